"""The web page in a real browser (headless Chromium driven by Selenium): translate, read the heatmap, hover."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from bench.server import ROOT
from tests.integration.calls import FP32_MODEL
from tests.support.http import post_json
from tests.support.service_process import ServiceProcess

SCREENSHOT = ROOT / "results" / "tmp" / "translate-page.png"  # ignored by git; results/http/ keeps one
TEXTS = ["big red car", "the small dog sees a green tree"]
WAIT_S = 30


def chromium() -> Any:
    """A headless Chromium; skips where Debian's chromium and chromium-driver are missing (fails under CI=true)."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        why = "Chromium or chromedriver is missing: apt-get install chromium chromium-driver (deploy/install-tools.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1400"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, to check for errors
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


def weights_of(elements: list[Any]) -> list[float]:
    return [float(e.get_attribute("data-weight")) for e in elements]


def test_translate_read_the_heatmap_and_hover(browser: Any, service: ServiceProcess) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.wait import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    browser.get(f"{service.http_url}/")
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#model option")) == 2)
    Select(browser.find_element(By.ID, "model")).select_by_value(FP32_MODEL)
    browser.find_element(By.ID, "source").send_keys("\n".join(TEXTS))
    browser.find_element(By.ID, "translate").click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".result")) == len(TEXTS))

    asked = {"texts": TEXTS, "model": FP32_MODEL, "beam_size": 4, "n_best": 3, "return_scores": True}
    expected = post_json(f"{service.http_url}/v1/translate", {**asked, "return_attention": True}).json
    results = browser.find_elements(By.CSS_SELECTOR, ".result")
    for result, translation in zip(results, expected["translations"], strict=True):
        hypotheses = translation["hypotheses"]
        assert result.find_element(By.CSS_SELECTOR, ".translation").text == hypotheses[0]["text"]
        scores = [item.text for item in result.find_elements(By.CSS_SELECTOR, ".n-best .score")]
        assert scores == [f"{h['score']:.3f}" for h in hypotheses]
        attention = hypotheses[0]["attention"]
        rows, cols, weights = attention["rows"], attention["cols"], attention["weights"]
        cells = result.find_elements(By.CSS_SELECTOR, ".heatmap td")
        assert len(cells) == rows * cols > 0
        assert weights_of(cells) == pytest.approx(weights, abs=1e-4)

    first = results[0]
    attention = expected["translations"][0]["hypotheses"][0]["attention"]
    rows, cols, weights = attention["rows"], attention["cols"], attention["weights"]
    sources = first.find_elements(By.CSS_SELECTOR, ".source-tokens .token")
    targets = first.find_elements(By.CSS_SELECTOR, ".target-tokens .token")
    assert (len(targets), len(sources)) == (rows, cols)

    column = 0
    ActionChains(browser).move_to_element(sources[column]).perform()
    wait.until(lambda b: targets[0].get_attribute("data-weight") is not None)
    assert weights_of(targets) == pytest.approx([weights[i * cols + column] for i in range(rows)], abs=1e-4)

    row = rows - 1
    ActionChains(browser).move_to_element(targets[row]).perform()
    wait.until(lambda b: "hovered" in (targets[row].get_attribute("class") or ""))
    tied = weights[row * cols : (row + 1) * cols]
    assert weights_of(sources) == pytest.approx(tied, abs=1e-4)
    strongest = sources[tied.index(max(tied))]
    assert strongest.value_of_css_property("background-color") == "rgba(245, 158, 11, 1)"
    header = first.find_elements(By.CSS_SELECTOR, ".heatmap tbody th")[row]
    assert "hovered" in (header.get_attribute("class") or "")

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    assert console_errors(browser) == []


def console_errors(browser: Any) -> list[str]:
    """What the page wrote to the console as errors (a blocked load, a failing script)."""
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


UPPER_TRIANGLE_ALPHA = """
const canvas = arguments[0], cell = Number(canvas.dataset.cell), n = canvas.width / cell;
const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
let alpha = 0;
for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) {
  const x = j * cell + Math.floor(cell / 2), y = i * cell + Math.floor(cell / 2);
  alpha += pixels[(y * canvas.width + x) * 4 + 3];
}
return alpha;
"""


def test_inside_the_model_every_layer_and_head(browser: Any, service: ServiceProcess) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.wait import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    browser.get(f"{service.http_url}/")
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#model option")) == 2)
    Select(browser.find_element(By.ID, "model")).select_by_value(FP32_MODEL)
    browser.find_element(By.ID, "source").send_keys(TEXTS[0])
    browser.find_element(By.ID, "attention-detail").click()
    browser.find_element(By.ID, "translate").click()
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".detail canvas"))

    asked = {"texts": TEXTS[:1], "model": FP32_MODEL, "beam_size": 4, "n_best": 3, "attention_detail": True}
    detail = post_json(f"{service.http_url}/v1/translate", asked).json["translations"][0]["attention_detail"]
    for kind in ("encoder_self_attention", "decoder_self_attention", "cross_attention"):
        canvases = browser.find_elements(By.CSS_SELECTOR, f".kind.{kind} canvas")
        assert len(canvases) == len(detail[kind]) > 1, kind
    for canvas in browser.find_elements(By.CSS_SELECTOR, ".kind.decoder_self_attention canvas"):
        assert browser.execute_script(UPPER_TRIANGLE_ALPHA, canvas) == 0

    last = detail["cross_attention"][-1]
    browser.find_elements(By.CSS_SELECTOR, ".kind.cross_attention canvas")[-1].click()
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".zoom td"))
    cells = browser.find_elements(By.CSS_SELECTOR, ".zoom td")
    assert len(cells) == last["rows"] * last["cols"]
    assert weights_of(cells) == pytest.approx(last["weights"], abs=1e-4)
    title = browser.find_element(By.CSS_SELECTOR, ".zoom-title").text
    assert title == f"Encoder-decoder attention, layer {last['layer'] + 1}, head {last['head'] + 1}"
    browser.save_screenshot(str(SCREENSHOT.with_name("attention-detail.png")))
    assert console_errors(browser) == []
