"""``delegated-aws sandbox``: the whole product flow on this machine.

It starts a real control plane, the emulated AWS accounts and the operator,
applies ``examples/s3-reader.yaml``, plays the customer's administrator exactly
as the status instructions say, sets ``roleArn``, waits for ``Ready``, proves a
boto3 client reading the Secret's ``credential_process`` config works, then
waits for one refresh and proves the same client still works. It exits 0 only
if every step did. The emulator grants 60-second sessions (AWS grants at least
15 minutes) so the refresh happens while you watch.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import boto3
import yaml

from delegated_aws.cli import render_instructions
from delegated_aws.devenv import mount
from delegated_aws.devenv.awsemu_harness import AwsEmulator
from delegated_aws.devenv.build import ensure_binaries, source_root
from delegated_aws.devenv.controlplane import ControlPlane
from delegated_aws.devenv.operator_process import OperatorProcess
from delegated_aws.models import GROUP, PLURAL

NAMESPACE = "sandbox"
EXAMPLE = "examples/s3-reader.yaml"
SESSION_SECONDS = 60
REFRESH_MARGIN_SECONDS = 20
T = TypeVar("T")


class SandboxFailed(RuntimeError):
    """A step did not do what it should; the message says which."""


class Transcript:
    """Numbered, timed progress lines."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        self.say(f"{text} ...")
        began = time.monotonic()
        yield
        self.say(f"{text}: done in {time.monotonic() - began:.1f}s")


def main(*, keep: bool = False, env_file: str | None = None) -> int:
    """Run the sandbox; with ``keep``, stay up until SIGTERM or Ctrl-C."""
    out = Transcript()
    stop = threading.Event()
    _stop_on_signals(stop)
    workdir = Path(tempfile.mkdtemp(prefix="delegated-aws-sandbox-"))
    ok = False
    try:
        with ExitStack() as stack:
            env = _bring_up(out, stack, workdir)
            if keep and env_file:
                _write_env_file(Path(env_file), env)
                out.say(f"wrote {env_file}: `source` it to act as the customer")
            _flow(out, env, workdir)
            ok = True
            out.say("sandbox: every step passed")
            if keep:
                out.say("--keep: everything stays up; Ctrl-C or SIGTERM stops it")
                out.say(f"logs: {workdir}/operator.log and {workdir}/aws.log")
                stop.wait()
            out.say("stopping the operator, the AWS emulator and the control plane")
    except KeyboardInterrupt:
        out.say("interrupted; everything started has been stopped")
    except Exception as failure:
        out.say(f"FAILED: {type(failure).__name__}: {failure}")
        out.say(f"logs kept in {workdir}")
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() or not _waiting_to_stop(frame):
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _waiting_to_stop(frame: FrameType | None) -> bool:
    # While --keep waits, a signal ends the wait; at any other moment it
    # interrupts the step, and the ExitStack stops what was started.
    while frame is not None:
        if frame.f_code.co_name == "wait" and "threading" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


class Env(dict[str, Any]):
    """What the flow needs from the components it brought up."""


def _bring_up(out: Transcript, stack: ExitStack, workdir: Path) -> Env:
    with out.step("control-plane binaries (built once per machine, minutes)"):
        bin_dir = ensure_binaries()
    with out.step("starting etcd, kube-apiserver and kube-controller-manager"):
        plane = stack.enter_context(ControlPlane(bin_dir=bin_dir))
    root = source_root()
    with out.step("applying crds/ with kubectl"):
        plane.kubectl("apply", "-f", str(root / "crds"))
        plane.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/delegatedawssecrets.delegatedaws.io",
        )
    with out.step("starting the AWS emulator (moto, IAM authorisation on)"):
        aws = stack.enter_context(AwsEmulator(log_path=workdir / "aws.log"))
        aws.client.set_session_lifetime(SESSION_SECONDS)
    out.say(
        f"operator account {aws.operator.account_id} "
        f"({aws.operator.user_arn}), customer account "
        f"{aws.customer.account_id}"
    )
    operator = OperatorProcess(
        kubeconfig=plane.kubeconfig,
        log_path=workdir / "operator.log",
        env={
            **aws.sdk_env(aws.operator),
            "DELEGATED_AWS_MIN_REFRESH_MARGIN": f"{REFRESH_MARGIN_SECONDS}s",
            "DELEGATED_AWS_METRICS_PORT": "0",
        },
    )
    with out.step("starting the operator (delegated-aws run)"):
        operator.start()
        stack.callback(operator.stop)
        operator.wait_for_log("Operating as", timeout=60)
    return Env(plane=plane, aws=aws, operator=operator, root=root)


def _write_env_file(path: Path, env: Env) -> None:
    aws = env["aws"]
    lines = {
        "KUBECONFIG": str(env["plane"].kubeconfig),
        "AWS_ENDPOINT_URL": aws.endpoint_url,
        "AWS_ACCESS_KEY_ID": aws.customer.access_key_id,
        "AWS_SECRET_ACCESS_KEY": aws.customer.secret_access_key,
        "AWS_REGION": "eu-west-1",
        # boto3 and the aws CLI v1 read only this one.
        "AWS_DEFAULT_REGION": "eu-west-1",
        # kubectl, and delegated-aws (also as the kubectl plugin) from this venv.
        "PATH": os.pathsep.join(
            [
                str(env["plane"].bin_dir),
                str(Path(sys.executable).parent),
                os.environ.get("PATH", ""),
            ]
        ),
    }
    # It holds the emulated customer administrator's keys: owner-only.
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("".join(f"export {k}={_quote(v)}\n" for k, v in lines.items()))


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


# --- the flow -------------------------------------------------------------


def _flow(out: Transcript, env: Env, workdir: Path) -> None:
    plane, aws = env["plane"], env["aws"]
    mount_dir = workdir / "mount"
    manifest = yaml.safe_load((env["root"] / EXAMPLE).read_text())
    name = manifest["metadata"]["name"]
    # The sandbox's "pod" mounts the Secret here instead of the default path.
    manifest["spec"]["secret"]["mountPath"] = str(mount_dir)
    plane.kubectl("create", "namespace", NAMESPACE)
    with out.step(f"applying {EXAMPLE} ({name}) without a roleArn"):
        plane.kubectl(
            "apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump(manifest)
        )
        status = _wait(
            lambda: _status_with(plane, name, "instructions"),
            60,
            "status.instructions never appeared",
        )
    print(render_instructions(status), flush=True)
    with out.step("playing the customer: creating the role as instructed"):
        role_arn = _create_customer_role(aws, status, manifest)
    out.say(f"role created: {role_arn}")
    secret_name = manifest["spec"]["secret"]["name"]
    patched = time.monotonic()
    plane.kubectl(
        "patch",
        "delegatedawssecret",
        name,
        "-n",
        NAMESPACE,
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": {"roleArn": role_arn}}),
    )
    secret = _wait(lambda: _secret(plane, secret_name), 60, "the Secret never appeared")
    written = time.monotonic() - patched
    out.say(f"roleArn set -> Secret written in {written:.2f}s")
    ready = _wait(lambda: _ready(plane, name), 60, "Ready never became True")
    out.say(f"Ready=True: {ready['message']}")
    _show_secret(out, secret)
    mount.project(secret["data"], mount_dir)
    session = _sdk_session(mount_dir, aws.endpoint_url)
    first = _whoami(out, session, "in-process boto3 Session via credential_process")
    _whoami_subprocess(out, mount_dir, aws.endpoint_url)
    with out.step("waiting for the operator to refresh the Secret"):
        refreshed = _wait(
            lambda: _rotated(plane, secret_name, secret),
            3 * SESSION_SECONDS,
            "the Secret was not refreshed before the credentials expired",
        )
    _show_secret(out, refreshed)
    mount.project(refreshed["data"], mount_dir)
    time.sleep(1)
    second = _whoami(out, session, "the same boto3 Session after the rotation")
    if first != second:
        raise SandboxFailed(f"identity changed across the refresh: {first} -> {second}")


def _wait(probe: Callable[[], T | None], timeout: float, failure: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.05)
    raise SandboxFailed(failure)


def _get(plane: ControlPlane, *args: str) -> dict[str, Any] | None:
    result = plane.kubectl("get", *args, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def _status_with(plane: ControlPlane, name: str, field: str) -> dict[str, Any] | None:
    body = _get(plane, f"{PLURAL}.{GROUP}", name)
    status = (body or {}).get("status") or {}
    return status if status.get(field) else None


def _ready(plane: ControlPlane, name: str) -> dict[str, Any] | None:
    status = _status_with(plane, name, "conditions") or {}
    for condition in status.get("conditions", []):
        if condition["type"] == "Ready" and condition["status"] == "True":
            return dict(condition)
    return None


def _secret(plane: ControlPlane, name: str) -> dict[str, Any] | None:
    return _get(plane, "secret", name)


def _rotated(
    plane: ControlPlane, name: str, before: dict[str, Any]
) -> dict[str, Any] | None:
    now = _secret(plane, name)
    key = "delegatedaws.io/expiration"
    if (
        now
        and now["metadata"]["annotations"][key]
        != before["metadata"]["annotations"][key]
    ):
        return now
    return None


def _show_secret(out: Transcript, secret: dict[str, Any]) -> None:
    annotations = secret["metadata"].get("annotations", {})
    out.say(
        f"Secret {secret['metadata']['name']} keys: {', '.join(sorted(secret['data']))}"
    )
    out.say(
        f"  expires {annotations.get('delegatedaws.io/expiration')} "
        "(values never printed)"
    )


def _create_customer_role(
    aws: AwsEmulator, status: dict[str, Any], manifest: dict[str, Any]
) -> str:
    """What the customer's administrator does, straight from status."""
    found = status["instructions"]
    admin = boto3.Session(
        aws_access_key_id=aws.customer.access_key_id,
        aws_secret_access_key=aws.customer.secret_access_key,
        region_name=manifest["spec"]["region"],
    )
    iam = admin.client("iam", endpoint_url=aws.endpoint_url)
    role = iam.create_role(
        RoleName=found["roleName"],
        AssumeRolePolicyDocument=found["trustPolicy"],
        MaxSessionDuration=found["maxSessionDuration"],
    )
    iam.put_role_policy(
        RoleName=found["roleName"],
        PolicyName="delegated-aws",
        PolicyDocument=found["permissionsPolicy"],
    )
    s3 = admin.client("s3", endpoint_url=aws.endpoint_url)
    for bucket in manifest["spec"]["resources"]["s3Buckets"]:
        bucket_name = bucket.removeprefix("s3://").split("/")[0]
        s3.create_bucket(
            Bucket=bucket_name,
            CreateBucketConfiguration={
                "LocationConstraint": manifest["spec"]["region"]
            },
        )
        s3.put_object(Bucket=bucket_name, Key="README.txt", Body=b"sample data\n")
    return str(role["Role"]["Arn"])


def _sdk_session(mount_dir: Path, endpoint: str) -> boto3.Session:
    """A Session that knows nothing but the mounted config file."""
    os.environ["AWS_CONFIG_FILE"] = str(mount_dir / "config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(mount_dir / "no-such-file")
    for key in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
    ):
        os.environ.pop(key, None)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    return boto3.Session()


def _whoami(out: Transcript, session: boto3.Session, how: str) -> str:
    arn = str(session.client("sts").get_caller_identity()["Arn"])
    if ":assumed-role/" not in arn:
        raise SandboxFailed(f"{how} is not the assumed role: {arn}")
    out.say(f"{how}: sts:GetCallerIdentity -> {arn}")
    return arn


def _whoami_subprocess(out: Transcript, mount_dir: Path, endpoint: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=str(mount_dir / "config"),
        AWS_ENDPOINT_URL=endpoint,
        AWS_SHARED_CREDENTIALS_FILE=str(mount_dir / "no-such-file"),
    )
    code = "import boto3; print(boto3.client('sts').get_caller_identity()['Arn'])"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0 or ":assumed-role/" not in result.stdout:
        raise SandboxFailed(
            f"a separate process could not use the config: "
            f"{result.stderr.strip()[-500:]}"
        )
    out.say(
        f"a separate python process with only AWS_CONFIG_FILE: {result.stdout.strip()}"
    )
