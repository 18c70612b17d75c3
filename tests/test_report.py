"""`hiercheck report`: a self-contained page that parses, embeds real PNGs, asks the network for
nothing, and renders in headless Chromium with every image loaded and no console error."""

import base64
import fcntl
import io
import json
import os
import queue
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from hiercheck.validation.cli import main
from hiercheck.validation.report import spread_schools

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class PageParser(HTMLParser):
    """Every tag's attributes, the text of <style>, and whether the tags nest properly."""

    def __init__(self):
        super().__init__()
        self.tags, self.open, self.mismatches, self.style = [], [], [], ""

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.open or self.open[-1] != tag:
            self.mismatches.append((tag, list(self.open)))
        else:
            self.open.pop()

    def handle_data(self, data):
        if self.open and self.open[-1] == "style":
            self.style += data


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """`hiercheck report` on Rail (six rails of three: fast), written once for every test."""
    folder = tmp_path_factory.mktemp("report")
    assert main(["report", "--dataset", "rail", "--out", str(folder)]) == 0
    page = (folder / "index.html").read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return folder / "index.html", page, parser


def embedded_pngs(parser: PageParser) -> list[bytes]:
    prefix = "data:image/png;base64,"
    return [base64.b64decode(attrs["src"][len(prefix):], validate=True)
            for tag, attrs in parser.tags if tag == "img" and attrs.get("src", "").startswith(prefix)]


@pytest.mark.slow
def test_page_parses_with_properly_nested_tags(report):
    _, page, parser = report
    assert page.startswith("<!DOCTYPE html>")
    assert parser.mismatches == [] and parser.open == []
    headings = [attrs.get("id") for tag, attrs in parser.tags if tag == "h2"]
    assert headings == ["data", "engines", "schools", "mixing", "validation"]


@pytest.mark.slow
def test_at_least_six_figures_all_decoding_as_png(report):
    from matplotlib import image

    _, _, parser = report
    images = [attrs for tag, attrs in parser.tags if tag == "img"]
    pngs = embedded_pngs(parser)
    assert len(pngs) == len(images) >= 6  # every image is an embedded PNG
    for png in pngs:
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = image.imread(io.BytesIO(png), format="png")  # decodes the whole image
        assert pixels.shape[0] > 200 and pixels.shape[1] > 400
        assert np.ptp(pixels[..., :3]) > 0.5  # not a blank canvas
    assert all(attrs.get("alt") for attrs in images)


@pytest.mark.slow
def test_no_external_address_and_no_script(report):
    _, page, parser = report
    for tag, attrs in parser.tags:
        assert tag != "script"
        for name in ("src", "href"):
            if name in attrs:
                assert attrs[name].startswith(("data:", "#")), (tag, attrs[name][:60])
    assert "url(" not in parser.style and "@import" not in parser.style
    text_outside_images = "".join(
        part.split('"', 1)[-1] for part in page.split('src="data:image/png;base64,'))
    assert "http:" not in text_outside_images and "https:" not in text_outside_images


@pytest.mark.slow
def test_tables_show_every_engine_and_every_check(report):
    from hiercheck.validation.suite import CHECKS

    _, page, _ = report
    for engine in ("eb", "gibbs", "nuts", "exact"):
        assert f"<td>{engine}</td>" in page
    for check in CHECKS:
        assert f"<td>{check}</td>" in page
    assert "Rail" in page or "rail" in page


def test_forest_plot_schools_span_the_sizes():
    n = np.array([5, 1, 9, 3, 7, 2, 8, 4, 6, 10])
    chosen = spread_schools(n, 4)
    # ranks of the sizes 0..9 at linspace(0, 9, 4) rounded: 0, 3, 6, 9 -> sizes 1, 4, 7, 10
    assert n[chosen].tolist() == [1, 4, 7, 10]
    assert sorted(spread_schools(n, 20)) == list(range(10))  # few schools: every one


def test_bad_data_options_are_one_line_and_exit_2(capsys, tmp_path):
    assert main(["report", "--data", "x.csv", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--data needs --group and --value" in err
    assert not (tmp_path / "index.html").exists()


# -- rendering in headless Chromium, driven over the DevTools protocol on a pipe ------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# What the machine notes prescribe for a headless run as root with no network: no sandbox (root),
# and no background connections, which the closed network would refuse (console noise).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--hide-scrollbars", "--window-size=1200,900",
                  "--remote-debugging-pipe"]


class DevTools:
    """Chromium's DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4 out, messages
    ended by NUL): the standard library is enough, no browser driver to install."""

    def __init__(self, profile: Path, timeout: float = 60.0):
        # every end above fd 4, so that the child's dup2 to 3 and 4 clobbers none of them
        to_browser, self._to_browser = (_above_4(fd) for fd in os.pipe())
        self._from_browser, from_browser = (_above_4(fd) for fd in os.pipe())

        def plumb():  # in the child: the pipe ends where Chromium expects them
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.process = subprocess.Popen(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=plumb, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self.timeout, self.next_id, self.events = timeout, 0, []
        self.messages = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buffer = b""
        with os.fdopen(self._from_browser, "rb", buffering=0) as stream:
            while chunk := stream.read(65536):
                buffer += chunk
                *complete, buffer = buffer.split(b"\0")
                for message in complete:
                    self.messages.put(json.loads(message))

    def call(self, method: str, session: str | None = None, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._next(method)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str):
        while not any(event.get("method") == method for event in self.events):
            self.events.append(self._next(method))

    def _next(self, waiting_for: str) -> dict:
        try:
            return self.messages.get(timeout=self.timeout)
        except queue.Empty:
            raise RuntimeError(f"chromium sent nothing for {self.timeout:g} s while waiting for "
                               f"{waiting_for} (its exit code: {self.process.poll()})") from None

    def close(self):
        try:
            self.call("Browser.close")
        except (RuntimeError, queue.Empty, OSError):
            pass
        finally:
            os.close(self._to_browser)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _above_4(fd: int) -> int:
    """A close-on-exec copy of `fd` numbered 10 or more; `fd` is closed."""
    copy = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return copy


def render_page(path: Path, profile: Path) -> dict:
    """Open `path` in headless Chromium: its console errors, uncaught exceptions and error log
    entries, the state of every image, and a full-page screenshot (PNG bytes)."""
    browser = DevTools(profile)
    try:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            browser.call(f"{domain}.enable", session)
        browser.call("Page.navigate", session, url=path.resolve().as_uri())
        browser.wait_for("Page.loadEventFired")
        images = json.loads(browser.call(
            "Runtime.evaluate", session, returnByValue=True,
            expression="JSON.stringify(Array.from(document.images, image => "
                       "[image.complete, image.naturalWidth, image.naturalHeight]))",
        )["result"]["value"])
        size = browser.call("Page.getLayoutMetrics", session)["cssContentSize"]
        screenshot = browser.call("Page.captureScreenshot", session, format="png",
                                  captureBeyondViewport=True,
                                  clip={"x": 0, "y": 0, "width": size["width"],
                                        "height": size["height"], "scale": 1})
        events = [event for event in browser.events if event.get("sessionId") == session]
    finally:
        browser.close()
    errors = []
    for event in events:
        params = event.get("params", {})
        if event["method"] == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            errors.append(("console", params["args"]))
        elif event["method"] == "Runtime.exceptionThrown":
            errors.append(("exception", params["exceptionDetails"]))
        elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(("log", params["entry"]))
    return {"errors": errors, "images": images,
            "screenshot": base64.b64decode(screenshot["data"])}


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine: Debian's package "
                    "`chromium` provides it (apt-get install chromium)")
def test_renders_in_headless_chromium_with_every_image_loaded(report, tmp_path):
    from matplotlib import image

    path, _, parser = report
    rendered = render_page(path, tmp_path / "profile")
    assert rendered["errors"] == []
    assert len(rendered["images"]) == len(embedded_pngs(parser)) >= 6
    for complete, width, height in rendered["images"]:
        assert complete and width > 400 and height > 200  # loaded and decoded
    screenshot = image.imread(io.BytesIO(rendered["screenshot"]), format="png")
    assert screenshot.shape[1] >= 1000 and screenshot.shape[0] > 3000  # the whole page, drawn
    if os.environ.get("HIERCHECK_SCREENSHOT"):  # to look at it: HIERCHECK_SCREENSHOT=page.png
        Path(os.environ["HIERCHECK_SCREENSHOT"]).write_bytes(rendered["screenshot"])



# -- `hiercheck report --model NAME`: a built-in model's Gibbs sampler beside NUTS ---------------

@pytest.fixture(scope="module")
def model_report(tmp_path_factory):
    """The blood-pressure model's report under settings smaller than the quick ones (Geweke's
    are the quick ones: shorter chains raise false alarms), written once: about 50 s."""
    from dataclasses import replace

    from hiercheck.validation.generic import GENERIC_QUICK
    from hiercheck.validation.report import write_model_report

    small = replace(GENERIC_QUICK, posterior_points=1, prior_points=1, consistency_draws=500,
                    joint_draws=300, nuts_draws=300, nuts_tune=300, sweep_draws=600,
                    sweep_tune=100, sbc_replications=20, sbc_draws=20, sbc_thin=2, sbc_tune=20)
    folder = tmp_path_factory.mktemp("model-report")
    path, verdict = write_model_report("bloodpressure", folder, settings=small)
    page = path.read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return path, page, parser, verdict


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine: Debian's package "
                    "`chromium` provides it (apt-get install chromium)")
def test_model_report_shows_gibbs_beside_nuts_and_renders(model_report, tmp_path):
    from hiercheck.validation.generic import GENERIC_CHECKS

    path, page, parser, verdict = model_report
    assert parser.mismatches == [] and parser.open == []
    assert [attrs.get("id") for tag, attrs in parser.tags if tag == "h2"] == [
        "data", "engines", "validation"]
    assert "426" in page and "each subject&#x27;s measurements in date order" in page
    for column in ("gibbs mean", "gibbs SD", "nuts mean", "nuts SD"):
        assert f"<th>{column}</th>" in page
    for quantity in ("mu", "beta", "lam", "omega", "theta[0]"):
        assert f"<td>{quantity}</td>" in page
    for check in GENERIC_CHECKS:
        assert f"<td>{check}</td>" in page
    assert verdict.passed, verdict.table  # the shipped sampler, at these settings and seed 0
    assert all(attrs["src"].startswith("data:") for tag, attrs in parser.tags if "src" in attrs)
    rendered = render_page(path, tmp_path / "profile")
    assert rendered["errors"] == []
    assert len(rendered["images"]) == len(embedded_pngs(parser)) == 2  # densities, SBC
    for complete, width, height in rendered["images"]:
        assert complete and width > 400 and height > 200


def test_model_report_refuses_data_options_and_models_without_an_engine(capsys, tmp_path):
    assert main(["report", "--model", "bloodpressure", "--dataset", "rail",
                 "--out", str(tmp_path)]) == 2
    assert "--model brings its own data and priors; leave out --dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:  # the flagship's report is --dataset's
        main(["report", "--model", "mathtest", "--out", str(tmp_path)])
    assert stopped.value.code == 2
    assert not (tmp_path / "index.html").exists()


@pytest.mark.slow
def test_a_mutants_report_shows_where_the_slip_is(tmp_path):
    """The student's sampler with rnorm's sd given theta's variance: the page's verdict is FAILED
    and its diagnosis names theta, its draws' SD far from the exact one, with the figure of the
    worst coordinate."""
    from dataclasses import replace

    from hiercheck.validation.generic import GENERIC_QUICK
    from hiercheck.validation.report import write_model_report

    small = replace(GENERIC_QUICK, posterior_points=1, prior_points=1, consistency_draws=500,
                    nuts_draws=300, nuts_tune=300, sweep_draws=600, sweep_tune=100)
    path, verdict = write_model_report("student", tmp_path, settings=small,
                                       mutant="draw_theta_variance_as_sd")
    page = path.read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(page)
    parser.close()
    assert parser.mismatches == [] and parser.open == []
    assert verdict.status == "failed"
    assert "its mutant <code>draw_theta_variance_as_sd</code>" in page
    assert ('<h3 id="diagnosis">' in page and "<td>theta</td>" in page
            and "<th>sd_ratio</th>" in page)
    frame = verdict.diagnose()
    assert set(frame.block) == {"theta"}
    # the variance v_i = sigma^2/(n_i + 1/tau^2) given as the SD: the ratio is sqrt(v_i), at
    # least 1.6 for the largest school (sigma^2 about 85, n_i at most 32); 500 draws put about
    # 3% of Monte Carlo error on a ratio
    assert (frame.sd_ratio.dropna() > 1.4).all() and frame.sd_ratio.notna().any()
    assert len(embedded_pngs(parser)) == 2  # the diagnosis, the densities


def test_mutant_without_model_is_refused(capsys, tmp_path):
    assert main(["report", "--mutant", "draw_theta_variance_as_sd", "--out", str(tmp_path)]) == 2
    assert "--mutant is an option of --model" in capsys.readouterr().err
