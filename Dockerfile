# The operator image: deploy/ refers to it as delegated-aws-operator
# (ghcr.io/delegated-aws/delegated-aws-operator:0.1.0). Non-root, and fine with
# a read-only root filesystem: nothing is written outside /tmp.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="delegated-aws-operator" \
      org.opencontainers.image.version="0.1.0"
COPY --from=build /install /usr/local
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin operator
USER 10001:10001
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# 8080: /metrics and /readyz; 8081: kopf's liveness /healthz.
EXPOSE 8080 8081
ENTRYPOINT ["delegated-aws"]
CMD ["run"]
