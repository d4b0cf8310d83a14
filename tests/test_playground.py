"""The playground page (services/http/playground/) in a real browser against a real server: the
project's own trained and exported models behind the HTTP/JSON surface, Debian's chromium driven
by Playwright. Every test fails on a console error, an uncaught page error or a request that
leaves the server's origin (tests/helpers/browser.py).

Screenshots for docs/playground.md: ``LATENTFORGE_SCREENSHOTS=1 pytest tests/test_playground.py``
writes docs/images/playground-*.png (otherwise they go to each test's tmp_path).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.helpers.browser import SlowLink, browser, open_page, screenshot  # noqa: F401 (fixtures)
from tests.helpers.servers import ServerThread, loopback_config, start_server, write_conditional_model
from tests.helpers.training import training_config

DCGAN, COMPLETION, SKETCH, DOODLE, COND = "mnist-dcgan", "mnist-completion", "kanji-sketch", "kanji-doodle", "cond-toy"
TOKEN = "playground-token-for-tests-0123456789"


@pytest.fixture(scope="module")
def repo(tmp_path_factory, completion_repo: Path, stroke_repo: Path) -> Path:
    """Every kind the page shows: a GAN, a VAE, a completion model, stroke models, a conditional GAN."""
    out = tmp_path_factory.mktemp("playground-models")
    shutil.copytree(completion_repo, out, dirs_exist_ok=True)
    shutil.copytree(stroke_repo, out, dirs_exist_ok=True)
    write_conditional_model(out, COND, num_classes=4)
    return out


@pytest.fixture(scope="module")
def server(repo: Path):
    server = start_server(repo, http_port=0, playground=True)
    yield server
    server.stop()


def digit_png(size: int = 28) -> bytes:
    """A white stroke on black, like a digit: an image to complete."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    draw.ellipse((7, 5, 21, 23), outline=255, width=3)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def select_model(page, select_id: str, name: str) -> None:
    """Choose the latest version of model ``name`` in a model <select>."""
    page.wait_for_function(
        "([id, name]) => [...document.getElementById(id).options].some(o => o.value.startsWith(name + '@'))",
        arg=[select_id, name])
    value = page.eval_on_selector(f"#{select_id}", "(s, name) => [...s.options].find(o => o.value.startsWith(name + '@')).value", name)
    page.select_option(f"#{select_id}", value)


def items(page, selector: str = "[data-testid=gallery-item]") -> list[dict]:
    """Gallery cards as dicts: sample id, origin, image src, provenance lines."""
    return page.eval_on_selector_all(selector, """cards => cards.map(c => ({
        sampleId: c.dataset.sampleId, origin: c.dataset.origin, src: c.querySelector('img').src,
        lines: [...c.querySelectorAll('[data-testid=provenance] span')].map(s => s.textContent)}))""")


def drag(page, selector: str, path: list[tuple[float, float]]) -> None:
    """Press the mouse at the first point of ``path`` (fractions of the element's box), move
    through the others in small steps, release."""
    box = page.locator(selector).bounding_box()
    at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in path]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_the_page_is_served_with_its_security_policy(server):
    with httpx.Client(base_url=server.http_url, timeout=30) as http:
        index = http.get("/")
        assert index.status_code == 200 and "text/html" in index.headers["content-type"]
        policy = index.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "connect-src 'self'" in policy
        for name in re.findall(r'(?:src|href)="([^"]+)"', index.text):
            assert http.get(f"/{name}").status_code == 200, name  # every file the page names is served
        assert "style=" not in index.text and "<script>" not in index.text  # nothing inline


def test_a_server_without_training_says_so_in_the_train_tab(server, open_page):
    watched = open_page(server.http_url, allow=(r"status of 404",))  # GET /v1/datasets: no such route here
    page = watched.open("/#train")
    page.wait_for_selector("#train-unavailable:not([hidden])")
    assert page.is_hidden("#error")
    watched.check()


def test_the_page_hashes_an_upload_as_the_server_checks_it(server, open_page):
    """The SHA-256 an upload declares: Web Crypto on a secure context (localhost), else the page's
    own JavaScript digest; both must be the server's hashlib digest, at every padding boundary."""
    import hashlib

    watched = open_page(server.http_url)
    page = watched.open()
    lengths = [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 70_000]
    got = page.evaluate("""async (lengths) => {
        const files = await import('/files.js');
        const out = [];
        for (const n of lengths) {
            const bytes = new Uint8Array(n).map((_, i) => (i * 7919 + n) % 251);
            out.push([files.sha256Plain(bytes), await files.sha256Hex(bytes)]);
        }
        return out;
    }""", lengths)
    for n, (plain, subtle) in zip(lengths, got):
        want = hashlib.sha256(bytes((i * 7919 + n) % 251 for i in range(n))).hexdigest()
        assert plain == subtle == want, n
    watched.check()


def test_generate_reuse_seed_download_variations_and_interpolate(server, open_page, tmp_path: Path):
    watched = open_page(server.http_url)
    page = watched.open()
    page.wait_for_selector("#server-state[data-state=ok]")

    # The model's card: kind, quality figures of the exporter's evaluation.
    select_model(page, "gen-model", DCGAN)
    info = page.locator("#model-info")
    assert "GAN" in info.inner_text() and "28×28" in info.inner_text()
    assert page.locator("#model-info [data-score=fid] td").first.inner_text().strip()
    assert page.locator("#gen-label-field").is_hidden()  # unconditional: no class to pick

    page.fill("#gen-count", "3")
    page.click("#gen-go")
    page.wait_for_selector("[data-testid=gallery-item] >> nth=2")
    first = items(page)
    assert len(first) == 3 and all(i["origin"] == "generate" for i in first)
    seed = page.inner_text("#gen-last-seed").split()[-1]
    assert first[0]["lines"][:2] == [f"{DCGAN} v1", f"seed {seed}"]
    assert first[1]["lines"][1] == f"seed {int(seed) + 1}"  # sample i uses seed + i

    # Reuse seed: the same seed again gives the identical PNG.
    page.click("#gen-reuse")
    assert page.input_value("#gen-seed") == seed
    page.fill("#gen-count", "1")
    page.click("#gen-go")
    page.wait_for_selector("[data-testid=gallery-item] >> nth=3")
    again = items(page)[0]
    assert again["sampleId"] != first[0]["sampleId"] and again["src"] == first[0]["src"]
    # The dice gives a fresh seed.
    page.click("#gen-dice")
    assert re.fullmatch(r"\d+", page.input_value("#gen-seed")) and page.input_value("#gen-seed") != seed

    # Download: the PNG the card shows.
    card = page.locator("[data-testid=gallery-item]").first
    with page.expect_download() as download:
        card.locator("[data-testid=download]").click()
    saved = Path(download.value.path()).read_bytes()
    assert saved == base64.b64decode(again["src"].split(",", 1)[1]) and saved.startswith(b"\x89PNG")
    assert download.value.suggested_filename.startswith(f"{DCGAN}-v1-seed{seed}")

    # Variations of a gallery image.
    card.locator("[data-testid=variations]").click()
    page.wait_for_selector("[data-testid=gallery-item][data-origin=variation] >> nth=3")
    varied = [i for i in items(page) if i["origin"] == "variation"]
    assert len(varied) == 4 and all(i["lines"][1].startswith("variation of ") for i in varied)
    assert all(i["lines"][2].startswith("noise seed ") for i in varied)

    # A conditional model: pick a class; the provenance names it.
    select_model(page, "gen-model", COND)
    assert page.locator("#gen-label-field").is_visible()
    assert "4 classes" in page.text_content("#model-info")
    page.select_option("#gen-label", "2")
    page.fill("#gen-seed", "77")
    page.fill("#gen-count", "2")
    page.fill("#gen-truncation", "0.7")
    page.click("#gen-go")
    page.wait_for_function("() => document.querySelector('[data-testid=gallery-item] span')?.textContent.startsWith('cond-toy')")
    cond = items(page)[:2]
    assert cond[0]["lines"] == [f"{COND} v1", "seed 77", "class 2 (class-2)", "truncation ψ 0.7"]
    assert cond[1]["lines"][1] == "seed 78"
    select_model(page, "gen-model", DCGAN)  # its card has the quality figures
    screenshot(page, "generate", tmp_path)

    # Interpolate between two gallery images of the GAN.
    page.click("#tab-interpolate")
    dcgan_ids = [i["sampleId"] for i in items(page) if i["lines"][0] == f"{DCGAN} v1"]
    page.click(f"#interp-picker [data-sample-id='{dcgan_ids[0]}']")
    page.click(f"#interp-picker [data-sample-id='{dcgan_ids[-1]}']")
    assert page.get_attribute("#interp-a", "data-sample-id") == dcgan_ids[0]
    assert page.get_attribute("#interp-b", "data-sample-id") == dcgan_ids[-1]
    page.fill("#interp-steps", "8")
    page.click("#interp-go")
    page.wait_for_selector("[data-testid=interp-thumb] >> nth=7")
    frames = page.eval_on_selector_all("[data-testid=interp-thumb]", "imgs => imgs.map(i => i.src)")
    assert len(frames) == 8 and len(set(frames)) > 1
    assert page.get_attribute("#interp-frame", "src") == frames[0]
    slider = page.locator("#interp-slider")
    slider.fill("5")  # scrub
    assert page.get_attribute("#interp-frame", "src") == frames[5]
    assert page.inner_text("#interp-t") == "t = 0.71"
    slider.fill("7")
    assert page.get_attribute("#interp-frame", "src") == frames[7]
    slider.fill("3")
    page.click("#interp-keep")
    kept = page.eval_on_selector("#interp-picker [data-testid=pick]", "b => b.dataset.sampleId")
    screenshot(page, "interpolate", tmp_path)
    page.click("#tab-generate")
    assert items(page)[0]["sampleId"] == kept and items(page)[0]["lines"][1].startswith("frame 3 of ")
    watched.check()


def test_paint_a_hole_complete_and_choose(server, open_page, tmp_path: Path):
    watched = open_page(server.http_url)
    page = watched.open("/#complete")
    page.wait_for_selector("#server-state[data-state=ok]")
    select_model(page, "complete-model", COMPLETION)
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(json.loads(r.post_data)) if r.url.endswith("/v1/complete") else None)

    image = tmp_path / "digit.png"
    image.write_bytes(digit_png())
    page.set_input_files("#complete-file", str(image))
    page.wait_for_selector("#complete-image[data-source=file]")
    assert page.is_disabled("#complete-go")  # no hole yet

    # Paint a hole with the brush across the middle of the image.
    drag(page, "#complete-mask", [(0.3, 0.45), (0.5, 0.5), (0.7, 0.55)])
    assert page.get_attribute("#complete-mask", "data-ops") == "1"
    page.fill("#complete-count", "4")
    page.fill("#complete-seed", "11")
    page.click("#complete-go")
    page.wait_for_selector("[data-testid=candidate] >> nth=3")
    mask = sent[-1]["mask"]
    assert set(mask) == {"png"} and base64.b64decode(mask["png"]).startswith(b"\x89PNG")
    hole = _mask_hole(base64.b64decode(mask["png"]))
    assert 0 < hole.mean() < 0.5 and hole[14, 14] and not hole[2, 2]  # the middle is the hole, a corner known
    assert sent[-1]["seed"] == "11" and sent[-1]["count"] == 4
    candidates = items(page, "[data-testid=candidate]")
    assert len({c["src"] for c in candidates}) > 1  # different fillings
    screenshot(page, "complete", tmp_path)

    # Choose one: it becomes the image being edited and joins the gallery.
    chosen = page.locator("[data-testid=candidate]").nth(2)
    chosen.locator("[data-testid=choose]").click()
    assert "chosen" in chosen.get_attribute("class")
    chosen_id = chosen.get_attribute("data-sample-id")
    page.wait_for_selector(f"#complete-image[data-source='{chosen_id}']")
    assert page.get_attribute("#complete-mask", "data-ops") == "0"  # a fresh hole for the next round

    # A box instead of a brush: sent as holes, no PNG.
    page.check("#tool-box")
    drag(page, "#complete-mask", [(0.1, 0.1), (0.4, 0.35)])
    page.fill("#complete-count", "2")
    page.click("#complete-go")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=candidate]').length === 2")
    boxes = sent[-1]["mask"]["holes"]["boxes"]
    assert len(boxes) == 1 and boxes[0]["x"] in (2, 3) and boxes[0]["width"] >= 7

    page.click("#tab-generate")
    made = items(page)
    assert made[0]["sampleId"] == chosen_id and made[0]["origin"] == "complete"
    assert made[0]["lines"][:2] == [f"{COMPLETION} v1", f"completion · seed {11 + 2}"]
    watched.check()


def _mask_hole(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("L")) < 128


def longest_drawing_seed(server, model: str, temperature: float, tries: int = 32,
                         path: str = "/v1/strokes/generate", **fields) -> tuple[int, int]:
    """(seed, points) of the longest of ``tries`` drawings (seeds 0..tries-1): the tiny test models
    end most drawings after a few points, and a live drawing is best watched on a long one."""
    body = {"model": model, "count": tries, "seed": "0", "temperature": temperature, "maxSteps": 80, **fields}
    with httpx.Client(base_url=server.http_url, timeout=60) as http:
        with http.stream("POST", path, json=body) as response:
            lines = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    points = {e.get("index", 0): e["done"].get("points", 0) for e in lines if "done" in e}
    seed = max(points, key=lambda i: points[i])
    return seed, points[seed]


def test_live_drawing_and_continue_my_strokes(server, open_page, tmp_path: Path):
    # Through a slow link: on loopback a drawing's events arrive at once; over a real network
    # they trickle in, and the page must draw them as they come.
    link = SlowLink(server.server.http_port, marker=b"/v1/strokes/")
    try:
        _live_drawing(server, open_page(link.url), link, tmp_path)
    finally:
        link.close()


def _live_drawing(server, watched, link: SlowLink, tmp_path: Path) -> None:
    page = watched.open("/#draw")
    page.wait_for_selector("#server-state[data-state=ok]")
    select_model(page, "draw-model", DOODLE)
    assert "none (draws unconditionally)" in page.inner_text("#draw-info")
    page.locator("#draw-temperature").fill("0.8")
    assert page.inner_text("#draw-temperature-value") == "0.80"
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(json.loads(r.post_data)) if "/v1/strokes/" in r.url else None)

    seed, longest = longest_drawing_seed(server, DOODLE, 0.8)
    assert longest >= 4, "the test model draws nothing longer than a few points"
    page.fill("#draw-count", "2")
    page.fill("#draw-seed", str(seed))
    page.fill("#draw-steps", "80")
    page.click("#draw-go")
    # Live: the first canvas shows part of the drawing while the stream is still open.
    page.wait_for_function("() => document.querySelector('[data-testid=drawing]')?.dataset.points > 0")
    mid = page.eval_on_selector("[data-testid=drawing]", """f => ({points: Number(f.dataset.points),
        state: document.getElementById('draw-results').dataset.state, image: f.querySelector('canvas').toDataURL()})""")
    page.wait_for_selector("#draw-results[data-state=done]", timeout=60_000)
    drawings = _drawings(page)
    end = page.eval_on_selector("[data-testid=drawing] canvas", "c => c.toDataURL()")
    assert mid["state"] == "streaming" and 0 < mid["points"] < int(drawings[0]["points"]) == longest, (mid, drawings)
    assert mid["image"] != end  # the canvas changed as points came in
    assert len(drawings) == 2 and all(d["state"] == "done" and d["sampleId"] for d in drawings)
    assert all(d["points"] == d["pointsAtEnd"] for d in drawings)  # every point streamed was drawn
    assert int(drawings[0]["paints"]) > 2  # painted piece by piece, not once at the end
    assert sent[-1] == {"model": DOODLE, "version": "1", "count": 2, "temperature": pytest.approx(0.8),
                        "seed": str(seed), "maxSteps": 80}
    screenshot(page, "draw", tmp_path)

    # Stop: the stream is given up (the server stops drawing), without an error.
    link.pause_s = 0.1
    page.fill("#draw-count", "1")
    page.click("#draw-go")
    page.wait_for_function("() => document.querySelector('[data-testid=drawing]')?.dataset.points > 0")
    page.click("#draw-stop")
    page.wait_for_selector("#draw-results[data-state=stopped]")
    assert page.inner_text("#draw-status").startswith("stopped after ") and page.is_hidden("#error")
    assert page.is_enabled("#draw-go") and page.is_disabled("#draw-stop")
    link.pause_s = 0.015

    # Draw two strokes with the mouse; the model (with an encoder) finishes the drawing.
    select_model(page, "draw-model", SKETCH)
    drag(page, "#draw-pad", [(0.2, 0.3), (0.5, 0.28), (0.8, 0.3)])
    drag(page, "#draw-pad", [(0.5, 0.15), (0.5, 0.5), (0.48, 0.8)])
    assert page.get_attribute("#draw-pad", "data-strokes") == "2"
    page.fill("#draw-count", "3")
    page.fill("#draw-seed", "")
    page.click("#pad-continue")
    page.wait_for_selector("#draw-results[data-kind=continue][data-state=done]", timeout=60_000)
    prefix = sent[-1]["prefix"]["points"]
    info = _model(server, SKETCH)["strokes"]
    assert 2 <= len(prefix) <= info["maxSteps"]
    pens = [p["pen"] for p in prefix]
    assert pens[-1] == "PEN_STATE_UP" and pens.count("PEN_STATE_UP") == 2  # the pen lifts after each stroke
    # The first stroke runs left to right across 60% of the pad, which spans 6 of the model's scale units.
    first_stroke = prefix[: pens.index("PEN_STATE_UP") + 1]
    assert sum(p["dx"] for p in first_stroke) == pytest.approx(0.6 * 6 * info["scale"], rel=0.05)
    assert abs(sum(p["dy"] for p in first_stroke)) < 0.05 * 6 * info["scale"]
    continued = _drawings(page)
    assert len(continued) == 3 and all(d["state"] == "done" and d["sampleId"] for d in continued)

    # Again from the seed whose continuation is longest: the page draws what the API answers.
    seed, longest = longest_drawing_seed(server, SKETCH, float(sent[-1]["temperature"]),
                                         path="/v1/strokes/continue", prefix=sent[-1]["prefix"])
    page.fill("#draw-seed", str(seed))
    page.click("#pad-continue")
    page.wait_for_function("(seed) => document.querySelector('#draw-results[data-kind=continue][data-state=done] "
                           "[data-testid=drawing] figcaption')?.textContent.startsWith(`seed ${seed} `)", arg=str(seed))
    assert int(_drawings(page)[0]["points"]) == longest
    screenshot(page, "draw-continue", tmp_path)
    watched.check()


def _drawings(page) -> list[dict]:
    return page.eval_on_selector_all("[data-testid=drawing]", "fs => fs.map(f => ({...f.dataset}))")


def _model(server, name: str) -> dict:
    with httpx.Client(base_url=server.http_url, timeout=30) as http:
        return next(m for m in http.get("/v1/models").json()["models"] if m["name"] == name)


def test_a_token_protected_server_shows_its_401_until_the_token_is_entered(repo: Path, open_page, tmp_path: Path):
    server = start_server(repo, http_port=0, playground=True, auth_tokens=(TOKEN,))
    try:
        with httpx.Client(base_url=server.http_url, timeout=30) as http:
            missing = http.get("/v1/models").json()
            wrong = http.get("/v1/models", headers={"Authorization": "Bearer not-it"}).json()
        # The refused calls are the point here; chromium logs each as a console error.
        watched = open_page(server.http_url, allow=(r"status of 40[13]",))
        page = watched.open()
        page.wait_for_selector("#error:not([hidden])")
        assert page.inner_text("#error-message") == missing["message"]
        assert page.inner_text("#error-code") == missing["code"] == "UNAUTHENTICATED"
        assert page.inner_text("#server-state") == "token needed"
        screenshot(page, "token", tmp_path)

        page.fill("#token", "not-it")
        page.click("#token-save")
        page.wait_for_function("() => document.getElementById('error-code').textContent === 'PERMISSION_DENIED'")
        assert page.inner_text("#error-message") == wrong["message"]

        page.fill("#token", TOKEN)
        page.click("#token-save")
        page.wait_for_selector("#server-state[data-state=ok]")
        assert page.is_hidden("#error")
        select_model(page, "gen-model", DCGAN)
        page.click("#gen-go")
        page.wait_for_selector("[data-testid=gallery-item] >> nth=3")

        # The token is kept (localStorage): a reload needs no typing.
        page.reload()
        page.wait_for_selector("#server-state[data-state=ok]")
        assert page.input_value("#token") == TOKEN and page.is_hidden("#error")
        watched.check()
    finally:
        server.stop()


@pytest.fixture()
def training_server(tmp_path: Path):
    """A server hosting both services, with the HTTP surface and the page; models go to tmp."""
    from services.generation.server import GenerationServer

    models = tmp_path / "models"
    models.mkdir()
    serve = loopback_config(models=models, http_port=0, playground=True)
    server = ServerThread(lambda: GenerationServer(serve, training_config(tmp_path / "data", models))).start()
    yield server
    server.stop()


def shapes_folder(root: Path) -> Path:
    """A tiny labelled folder data set: two classes (one subfolder each) of 16x16 shapes."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    for cls in ("ring", "bar"):
        (root / cls).mkdir(parents=True)
        for k in range(12):
            image = Image.new("L", (16, 16), 0)
            draw = ImageDraw.Draw(image)
            a, b = (int(v) for v in rng.integers(2, 6, 2))
            if cls == "ring":
                draw.ellipse((a, b, a + 9, b + 9), outline=255, width=2)
            else:
                draw.rectangle((a, 2, a + 3, 13), fill=255)
            image.save(root / cls / f"{k:02d}.png")
    return root


TINY_OPTIONS = {"steps": "6", "batch_size": "8", "sample_every": "3", "checkpoint_every": "3", "log_every": "1",
                "grid_size": "4", "eval_every": "0", "threads": "1", "image_size": "16"}


def test_upload_train_watch_cancel_and_generate_from_the_published_model(training_server, open_page,
                                                                         tmp_path: Path):
    watched = open_page(training_server.http_url)
    page = watched.open("/#train")
    page.wait_for_selector("#panel-train[data-loaded=true]")
    assert "mnist5k" in page.inner_text("#dataset-list")

    # Upload a folder: the page zips it and sends it with its sha256.
    page.set_input_files("#upload-folder", str(shapes_folder(tmp_path / "shapes")))
    assert page.input_value("#upload-name") == "shapes"
    page.click("#upload-go")
    page.wait_for_selector("#upload-result[data-dataset=shapes]")
    assert "24 examples" in page.inner_text("#upload-result") and "ring" in page.inner_text("#upload-result")
    assert page.input_value("#job-dataset") == "shapes"

    # The form is built from the server's ListFamilies: every family, each option with its choices.
    from services.training.families import FAMILY_MESSAGES
    from trainer.families import FAMILIES
    from trainer.options import options_of

    assert page.eval_on_selector_all("#job-family option", "os => os.map(o => o.value)") == list(FAMILY_MESSAGES)
    page.select_option("#job-family", "sketch-rnn")
    assert FAMILIES["sketch-rnn"].summary in page.inner_text("#job-family-summary")
    page.select_option("#job-family", "dcgan")
    gan_loss = next(o for o in options_of(FAMILIES["dcgan"].config) if o.name == "gan_loss")
    shown = page.eval_on_selector_all("#opt-dcgan-gan_loss option", "os => os.slice(1).map(o => o.value)")
    assert shown == [str(c) for c in gan_loss.choices]
    page.fill("#job-model-name", "shapes-dcgan")
    for name, value in TINY_OPTIONS.items():
        page.fill(f"#opt-common-{name}", value)
    page.click("#job-family-details summary")
    page.fill("#opt-dcgan-width", "8")
    page.fill("#opt-dcgan-latent_dim", "8")
    page.select_option("#opt-dcgan-conditional", "true")
    page.click("#job-submit")
    page.wait_for_selector("#job-view:not([hidden])")
    job_id = page.inner_text("#job-id")
    page.wait_for_selector("#job-grid:not([hidden])", timeout=240_000)  # a grid arrives while it trains
    page.wait_for_selector("#job-view[data-state=succeeded]", timeout=240_000)
    assert page.get_attribute("#job-view", "data-step") == "6"
    assert page.get_attribute("#job-progress", "value") == "6"
    assert "loss_d" in page.inner_text("#job-losses")
    assert page.inner_text("#job-published").startswith("published shapes-dcgan v1")
    assert page.get_attribute("#job-grid", "src").startswith("data:image/png;base64,")
    page.wait_for_selector(f"#job-list tr[data-job-id='{job_id}'][data-state=succeeded]")
    screenshot(page, "train", tmp_path, full_page=True)

    # Generate from the published model.
    page.click("#job-generate")
    assert page.input_value("#gen-model") == "shapes-dcgan@1"
    assert "2 classes" in page.text_content("#model-info")
    page.fill("#gen-count", "4")
    page.click("#gen-go")
    page.wait_for_selector("[data-testid=gallery-item] >> nth=3")
    assert all(i["lines"][0] == "shapes-dcgan v1" for i in items(page))

    # A second, long job on a built-in set: cancel it.
    page.click("#tab-train")
    page.select_option("#job-dataset", "mnist5k")
    page.fill("#job-model-name", "long-dcgan")
    page.uncheck("#job-publish")
    page.fill("#opt-common-steps", "100000")
    page.click("#job-submit")
    page.wait_for_function(f"() => document.getElementById('job-id').textContent !== '{job_id}'")
    page.click("#job-cancel")
    page.wait_for_selector("#job-view[data-state=cancelled]", timeout=120_000)
    assert page.is_visible("#job-resume") and page.is_hidden("#job-generate")
    watched.check()


@pytest.fixture(scope="module")
def style_server(tmp_path_factory):
    """A server of style models only (exported from untrained networks)."""
    from tests.helpers.style_models import write_style_model

    root = tmp_path_factory.mktemp("playground-style")
    write_style_model(root)
    server = start_server(root, http_port=0, playground=True)
    yield server
    server.stop()


def test_stylize_an_upload_then_again_by_the_style_id(style_server, open_page, tmp_path: Path):
    from PIL import Image

    rng = np.random.default_rng(3)
    content, style = tmp_path / "in.png", tmp_path / "art.png"
    Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(content)
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(style)
    watched = open_page(style_server.http_url)
    page = watched.open("/#stylize")
    select_model(page, "stylize-model", "adain-toy")
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(json.loads(r.post_data)) if r.url.endswith("/v1/stylize") else None)
    page.set_input_files("#stylize-content-file", str(content))
    page.set_input_files("#stylize-style-file", str(style))
    page.wait_for_selector("#stylize-go:not([disabled])")
    page.fill("#stylize-alpha", "0.5")
    page.check("#stylize-preserve")
    page.click("#stylize-go")
    page.wait_for_selector("#stylize-result[data-sample-id]")
    style_id = page.get_attribute("#stylize-about", "data-style-id")
    assert style_id == hashlib.sha256(style.read_bytes()).hexdigest()
    first = page.get_attribute("#stylize-result", "src")
    size = page.eval_on_selector("#stylize-result", "img => [img.naturalWidth, img.naturalHeight]")
    assert size == [53, 37]
    screenshot(page, "stylize", tmp_path)
    first_id = page.get_attribute("#stylize-result", "data-sample-id")
    page.click("#stylize-go")  # the style again, now by its id
    page.wait_for_function("id => document.getElementById('stylize-result').dataset.sampleId !== id", arg=first_id)
    assert sent[0]["styles"][0]["image"]["png"] and sent[0]["alpha"] == 0.5 and sent[0]["preserveColor"] is True
    assert sent[1]["styles"] == [{"styleId": style_id}]
    assert page.get_attribute("#stylize-result", "src") == first  # deterministic: the same bytes
    watched.check()
