"""The compose stack for real: the image built and the translator and Prometheus started with podman-compose
(docker-compose.yml + docker-compose.local.yml on local Debian base images), checked from outside through the
published loopback ports. Select alone with `pytest -m compose`; needs root, podman, podman-compose and
debootstrap (deploy/install-tools.sh). Grafana has no Debian package and is not part of this run."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from service.client import TranslatorClient
from tests.deploy.paths import ALERT_RULES, find_tool
from tests.deploy.promql import extract_promql, rules_promql
from tests.deploy.stack import IMAGE, ComposeStack
from tests.deploy.tools import missing
from tests.service.harness import wait_for

pytestmark = [pytest.mark.compose, pytest.mark.slow, pytest.mark.timeout(2400)]

MODELS = {"en-fr", "en-de"}  # the bundled models the image serves
SENTENCE = "a man in a blue shirt is riding a bike down the street ."
SCRAPE_TIMEOUT_S = 90.0  # the compose config scrapes every 15 s; rate() needs two scrapes of a series
DRAIN_WORK_S = 3.0  # queued work at SIGTERM: longer than podman-compose takes to reach the translator,
# well within MT_GRACE_PERIOD_S (10 s)


@pytest.fixture(scope="module")
def stack(pytestconfig: pytest.Config) -> Iterator[ComposeStack]:
    check_prerequisites()
    stack = ComposeStack()
    # One sentence per model call, so that many calls are still queued when SIGTERM comes (drain test).
    stack.env["MT_MAX_BATCH_SIZE"] = "1"
    try:
        stack.build()
        stack.up()
        yield stack
    finally:
        if "up" in stack.timings and "down" not in stack.timings:  # the last test takes it down itself
            stack.down(check=False)
        timings = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in stack.timings.items())
        report(pytestconfig, f"compose stack {stack.project}: {timings}")


def check_prerequisites() -> None:
    absent = [tool for tool in ("podman", "podman-compose", "debootstrap") if find_tool(tool) is None]
    if absent:
        missing(f"{', '.join(absent)} not installed: run deploy/install-tools.sh as root")
    if os.geteuid() != 0:
        missing("the compose stack test runs podman and debootstrap as root")
    info = subprocess.run(["podman", "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        missing(f"podman does not work here: {info.stderr.strip()[-500:]}")


def report(pytestconfig: pytest.Config, line: str) -> None:
    """Writes `line` to the terminal, captured output or not."""
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{line}", flush=True)


def test_health_check_turns_healthy(stack: ComposeStack) -> None:
    healthcheck = stack.podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", IMAGE)
    assert "/app/healthcheck.py" in healthcheck, "the image lost its HEALTHCHECK"
    statuses: list[str] = []

    def healthy() -> bool:
        statuses.append(stack.health("translator"))
        assert statuses[-1] != "unhealthy", stack.podman("logs", stack.container("translator"))
        return statuses[-1] == "healthy"

    wait_for(healthy, timeout=180, interval=2)


def test_translates_over_grpc_on_the_published_port(stack: ComposeStack) -> None:
    wait_for(lambda: stack.health("translator") == "healthy", timeout=180, interval=2)
    with TranslatorClient(stack.grpc_address) as client:
        assert {model.name for model in client.list_models()} == MODELS
        for model in MODELS:
            [translation] = client.translate([SENTENCE], model=model).translations
            assert translation.hypotheses[0].text.strip(), model


def test_translates_over_http_and_serves_the_page_on_the_published_port(stack: ComposeStack) -> None:
    wait_for(lambda: stack.health("translator") == "healthy", timeout=180, interval=2)
    body = json.dumps({"texts": [SENTENCE]}).encode()
    asked = urllib.request.Request(f"{stack.http_url}/v1/translate", body, {"content-type": "application/json"})
    with urllib.request.urlopen(asked, timeout=30) as answer:
        assert json.load(answer)["translations"][0]["hypotheses"][0]["text"].strip()
    with urllib.request.urlopen(f"{stack.http_url}/", timeout=30) as page:
        assert page.headers["content-type"].startswith("text/html")


def test_prometheus_scrapes_the_translator_and_every_dashboard_query_has_data(stack: ComposeStack) -> None:
    wait_for(lambda: stack.health("prometheus") == "healthy", timeout=SCRAPE_TIMEOUT_S, interval=1)
    wait_for(lambda: bool(stack.query('up{job="translator"} == 1')), timeout=SCRAPE_TIMEOUT_S, interval=1)
    with TranslatorClient(stack.grpc_address) as client:
        send_every_kind_of_call(client)
    alerts = rules_promql(ALERT_RULES)
    panels = [e for e in extract_promql() if e not in alerts]
    assert panels
    end = time.monotonic() + SCRAPE_TIMEOUT_S
    while (empty := [e for e in panels if not stack.query(e.expr)]) and time.monotonic() < end:
        time.sleep(1)
    assert not empty, f"no data after {SCRAPE_TIMEOUT_S} s for {[e.source for e in empty]}"


def test_the_alert_rules_load(stack: ComposeStack) -> None:
    expected = {e.source.rsplit(" ", 1)[-1] for e in rules_promql(ALERT_RULES)}

    def rules() -> list[dict[str, str]]:
        groups = stack.prometheus("rules")["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    wait_for(lambda: {r["name"] for r in rules()} == expected, timeout=SCRAPE_TIMEOUT_S, interval=1)
    wait_for(lambda: all(r["health"] != "unknown" for r in rules()), timeout=SCRAPE_TIMEOUT_S, interval=1)
    assert [(r["name"], r["health"], r.get("lastError", "")) for r in rules()] == [
        (r["name"], "ok", "") for r in rules()
    ]


def test_the_image_has_no_torch_and_runs_as_a_non_root_user(stack: ComposeStack, pytestconfig: pytest.Config) -> None:
    container = stack.container("translator")
    assert stack.podman("image", "inspect", "--format", "{{.Config.User}}", IMAGE) == "10001:10001"
    assert stack.podman("exec", container, "id", "-u") == "10001"
    probe = "import importlib.util, sys; print(importlib.util.find_spec('torch') is None, sys.version.split()[0])"
    no_torch, python = stack.podman("exec", container, "python", "-c", probe).split()
    assert no_torch == "True"
    size = int(stack.podman("image", "inspect", "--format", "{{.Size}}", IMAGE))
    report(pytestconfig, f"image {IMAGE}: {size / 1e6:.0f} MB, Python {python}")


def test_down_lets_accepted_calls_finish_and_the_translator_exits_0(
    stack: ComposeStack, pytestconfig: pytest.Config
) -> None:
    """Run last: `podman-compose down` sends SIGTERM; every call the translator had accepted is answered."""
    wait_for(lambda: stack.health("translator") == "healthy", timeout=180, interval=2)
    with TranslatorClient(stack.grpc_address) as client:
        per_call = seconds_per_call(client)
    calls = max(4, min(1000, round(DRAIN_WORK_S / per_call)))
    before = accepted(stack)
    finished: list[float] = []
    with grpc.insecure_channel(stack.grpc_address) as channel:
        stub = pb_grpc.TranslatorStub(channel)
        futures = [stub.Translate.future(pb.TranslateRequest(texts=[SENTENCE]), timeout=60) for _ in range(calls)]
        for future in futures:
            future.add_done_callback(lambda _: finished.append(time.monotonic()))
        wait_for(lambda: accepted(stack) >= before + calls, timeout=60, interval=0.05)
        wait = ["podman", "wait", stack.container("translator")]
        exit_status = subprocess.Popen(wait, stdout=subprocess.PIPE, text=True)
        down_started = time.monotonic()
        stack.down()
        codes = [future.code() for future in futures]
    report(
        pytestconfig,
        f"drain: {calls} calls queued ({per_call * 1000:.0f} ms each alone), "
        f"{sum(t > down_started for t in finished)} answered after down began, "
        f"the last {max(finished) - down_started:.1f} s after it",
    )
    assert exit_status.communicate(timeout=60)[0].strip() == "0"
    assert codes == [grpc.StatusCode.OK] * calls
    assert all(len(future.result().translations) == 1 for future in futures)
    assert any(t > down_started for t in finished), "no call was still running at SIGTERM"


def send_every_kind_of_call(client: TranslatorClient) -> None:
    """Calls of every method to both models, and calls refused with INVALID_ARGUMENT and NOT_FOUND."""
    for model in MODELS:
        client.translate([SENTENCE], model=model)
        [streamed] = client.translate_stream([pb.TranslateRequest(texts=[SENTENCE], model=model)])
        assert streamed.status.code == grpc.StatusCode.OK.value[0]
    client.list_models()
    with pytest.raises(grpc.RpcError) as invalid:
        client.translate([SENTENCE], beam_size=99)
    with pytest.raises(grpc.RpcError) as unknown:
        client.translate([SENTENCE], model="xx-yy")
    assert (invalid.value.code(), unknown.value.code()) == (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


def seconds_per_call(client: TranslatorClient, calls: int = 5) -> float:
    start = time.monotonic()
    for _ in range(calls):
        client.translate([SENTENCE])
    return (time.monotonic() - start) / calls


def accepted(stack: ComposeStack) -> float:
    """Translate calls the translator has answered or holds, from its /metrics page."""
    total = 0.0
    for family in text_string_to_metric_families(stack.metrics_text()):
        for sample in family.samples:
            if sample.labels.get("method") == "Translate" and sample.name in (
                "mt_requests_total",
                "mt_inflight_requests",
            ):
                total += sample.value
    return total
