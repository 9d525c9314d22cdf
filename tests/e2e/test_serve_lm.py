"""``canon serve`` on a language model: the official ``openai`` client on /v1, and the page.

A tiny GPT is trained on a generated Chinese corpus (one layer, two epochs); ``canon serve``
runs it in its own process with a token. The client's streamed and non-streamed texts must
equal what ``canon generate`` prints for the same seed and settings; each bad request gets
OpenAI's error body (which the client raises as its own error classes); eight concurrent
streams all get their first token; headless Chromium types a prompt and sees the answer
stream into the page.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli, served

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
TOKEN = "lm-token"
MODEL = "tiny-lm"
CONTEXT = 64
PROMPT = "今天"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import canonml

    root = tmp_path_factory.mktemp("serve-lm")
    lines = [f"第{i % 7}行：今天天气很好，我们去公园散步。" for i in range(60)]
    (root / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = {
        "name": MODEL,
        "task": "language-modeling",
        "seed": 0,
        "data": {"source": f"corpus:{root / 'corpus.txt'}"},
        "model": {"arch": "gpt", "layers": 1, "heads": 2, "dim": 16, "context": CONTEXT},
        "train": {"epochs": 2, "batch_size": 16},
        "track": False,
    }
    return canonml.run(spec, out=root / "runs").run_dir / "package"


@pytest.fixture(scope="module")
def server(package: Path) -> Iterator[str]:
    """``canon serve PKG --token TOKEN`` on a free port of 127.0.0.1, stopped afterwards."""
    with served(package, "--token", TOKEN) as url:
        yield url


def client(server: str, api_key: str = TOKEN) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=server + "/v1", api_key=api_key, max_retries=0, timeout=30)


def canon_generate(package: Path, prompt: str, **options: Any) -> str:
    """The text ``canon generate`` adds after ``prompt`` with these options."""
    args = [a for k, v in options.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    result = run_cli("generate", str(package), "--prompt", prompt, *args, timeout=60)
    assert result.code == 0, result.stderr
    assert result.stdout.startswith(prompt) and result.stdout.endswith("\n")
    return result.stdout[len(prompt) : -1]


# (prompt, OpenAI's parameters, the same settings for canon generate): the defaults differ.
SETTINGS = [
    (
        PROMPT,
        {"max_tokens": 24, "temperature": 0.9, "top_p": 0.9, "seed": 3},
        {"max_new_tokens": 24, "temperature": 0.9, "top_k": 0, "top_p": 0.9, "seed": 3},
    ),
    (
        PROMPT,
        {"max_tokens": 30, "seed": 7, "extra_body": {"top_k": 5}},
        {"max_new_tokens": 30, "temperature": 1.0, "top_k": 5, "top_p": 1.0, "seed": 7},
    ),
    ("我们", {"max_tokens": 20, "temperature": 0}, {"max_new_tokens": 20, "temperature": 0}),
]


@pytest.mark.serve
@pytest.mark.parametrize(("prompt", "openai_args", "cli_args"), SETTINGS)
def test_streamed_and_whole_completions_equal_canon_generate(
    server: str,
    package: Path,
    prompt: str,
    openai_args: dict[str, Any],
    cli_args: dict[str, Any],
) -> None:
    expected = canon_generate(package, prompt, **cli_args)
    c = client(server)
    whole = c.completions.create(model=MODEL, prompt=prompt, stream=False, **openai_args)
    assert whole.object == "text_completion" and whole.id.startswith("cmpl-")
    assert whole.model == MODEL and len(whole.choices) == 1
    choice = whole.choices[0]
    assert choice.text == expected and choice.index == 0 and choice.logprobs is None
    assert whole.usage is not None and whole.usage.prompt_tokens == len(prompt)  # characters
    tokens = whole.usage.completion_tokens
    assert whole.usage.total_tokens == len(prompt) + tokens
    assert choice.finish_reason == ("length" if tokens == openai_args["max_tokens"] else "stop")

    chunks = list(
        c.completions.create(
            model=MODEL,
            prompt=[prompt],  # a list of one prompt is the same request
            stream=True,
            stream_options={"include_usage": True},
            **openai_args,
        )
    )
    *texts, last, usage = chunks
    assert len(texts) > 1 and "".join(t.choices[0].text for t in texts) == expected
    assert all(t.choices[0].finish_reason is None for t in texts)
    assert last.choices[0].text == "" and last.choices[0].finish_reason == choice.finish_reason
    assert usage.choices == [] and usage.usage == whole.usage
    assert len({ch.id for ch in chunks}) == 1 and {ch.object for ch in chunks} == {
        "text_completion"
    }


@pytest.mark.serve
def test_stop_sequences_echo_and_the_raw_event_stream(server: str) -> None:
    c = client(server)
    free = c.completions.create(model=MODEL, prompt=PROMPT, max_tokens=40, seed=1).choices[0]
    stop = free.text[5:7]  # two characters from inside the text: it ends before them
    cut = c.completions.create(model=MODEL, prompt=PROMPT, max_tokens=40, seed=1, stop=[stop])
    assert cut.choices[0].text == free.text[: free.text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    echoed = c.completions.create(model=MODEL, prompt=PROMPT, max_tokens=40, seed=1, echo=True)
    assert echoed.choices[0].text == PROMPT + free.text

    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 8, "seed": 1, "stream": True}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.stream("POST", server + "/v1/completions", json=body, headers=auth) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""] and all(e.startswith("data: {") for e in events[:-2])
    last = json.loads(events[-3].removeprefix("data: "))
    assert last["choices"][0]["finish_reason"] in {"length", "stop"}


@pytest.mark.serve
def test_models_list_v2_metadata_and_metrics(server: str) -> None:
    models = client(server).models.list().data
    assert [(m.id, m.object, m.owned_by) for m in models] == [(MODEL, "model", "canonml")]
    assert models[0].created > 1_700_000_000
    auth = {"Authorization": f"Bearer {TOKEN}"}
    meta = httpx.get(f"{server}/v2/models/{MODEL}", headers=auth).json()
    assert meta["inputs"][0]["name"] == "input_ids" and meta["outputs"][0]["name"] == "logits"
    metrics = httpx.get(server + "/metrics", headers=auth).text
    assert f'canon_time_to_first_token_seconds_count{{model="{MODEL}"}}' in metrics


@pytest.mark.serve
def test_serving_a_language_model_never_imports_torch(package: Path) -> None:
    code = (
        "import sys\nfrom canonml.serve import build_app\n"
        "app = build_app(sys.argv[1:])\nassert list(app.state.language_models) == ['tiny-lm']\n"
        "heavy = [m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(package)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


# (arguments of completions.create, the openai error class, the param named, a fragment)
BAD = [
    ({"prompt": "今" * 80}, "BadRequestError", "prompt", "maximum context length is 64"),
    ({"prompt": "今" * CONTEXT}, "BadRequestError", "prompt", "at most 63"),
    ({"max_tokens": 0}, "BadRequestError", "max_tokens", "must be an integer >= 1, got 0"),
    ({"max_tokens": -3}, "BadRequestError", "max_tokens", "got -3"),
    ({"max_tokens": "ten"}, "BadRequestError", "max_tokens", "got 'ten'"),
    ({"model": "gpt-4"}, "BadRequestError", "model", "'gpt-4' does not exist; served: tiny-lm"),
    ({"temperature": -0.5}, "BadRequestError", "temperature", "must be a number >= 0"),
    ({"temperature": "hot"}, "BadRequestError", "temperature", "got 'hot'"),
    ({"top_p": 0}, "BadRequestError", "top_p", "in (0, 1]"),
    ({"n": 2}, "BadRequestError", "n", "only 1 is supported, got 2"),
    ({"seed": -1}, "BadRequestError", "seed", "an integer >= 0"),
    ({"stop": 5}, "BadRequestError", "stop", "a non-empty string or a list"),
    ({"prompt": ["a", "b"]}, "BadRequestError", "prompt", "one prompt per request"),
    ({"prompt": [1, 2, 3]}, "BadRequestError", "prompt", "a string or a list of one string"),
    ({"logprobs": 2}, "BadRequestError", "logprobs", "only"),
    ({"extra_body": {"top_k": 1.5}}, "BadRequestError", "top_k", "an integer >= 0"),
    ({"extra_body": {"beam": 4}}, "BadRequestError", "beam", "unrecognized request argument"),
]


@pytest.mark.serve
@pytest.mark.parametrize(("args", "error", "param", "fragment"), BAD)
def test_bad_requests_get_openai_errors(
    server: str, args: dict[str, Any], error: str, param: str, fragment: str
) -> None:
    import openai

    request = {"model": MODEL, "prompt": PROMPT, **args}
    for stream in (False, True):  # refused before the stream starts, with its status
        with pytest.raises(getattr(openai, error)) as caught:
            client(server).completions.create(stream=stream, **request)
        body = caught.value.body
        assert isinstance(body, dict) and body["param"] == param, body
        assert body["type"] == "invalid_request_error" and fragment in body["message"]
        assert fragment in str(caught.value)


@pytest.mark.serve
def test_malformed_json_and_a_wrong_token(server: str) -> None:
    import openai

    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    for content, fragment in ((b'{"model": ', "not valid JSON"), (b"[1]", "a JSON object")):
        r = httpx.post(server + "/v1/completions", content=content, headers=auth)
        assert r.status_code == 400 and fragment in r.json()["error"]["message"]
        assert r.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.AuthenticationError, match="missing or wrong token"):
        client(server, api_key="wrong").completions.create(model=MODEL, prompt=PROMPT)
    with pytest.raises(openai.AuthenticationError):
        client(server, api_key="wrong").models.list()


@pytest.mark.serve
def test_eight_concurrent_streams_each_get_their_first_token(server: str) -> None:
    """A loose bound for a loaded CI machine; the 1 s figure is bench/serve_lm.py's."""
    n, firsts, texts = 8, [float("inf")] * 8, [""] * 8
    clients = [client(server) for _ in range(n)]
    barrier = threading.Barrier(n)

    def stream(i: int) -> None:
        barrier.wait()
        start = time.perf_counter()
        for chunk in clients[i].completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=60, seed=i, stream=True
        ):
            if chunk.choices and chunk.choices[0].text and firsts[i] == float("inf"):
                firsts[i] = time.perf_counter() - start
            texts[i] += chunk.choices[0].text if chunk.choices else ""

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(texts) and max(firsts) < 5.0, firsts
    assert len(set(texts)) > 1  # eight seeds: not one answer for all


@pytest.mark.browser
def test_page_streams_a_completion(server: str, browser: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/")  # the server has a token: the page asks for it
    token = browser.find_element("css selector", "#token")
    WebDriverWait(browser, 10).until(lambda _: token.is_displayed())
    token.send_keys(TOKEN)
    browser.find_element("css selector", "#auth button").click()
    sec = browser.find_element("css selector", f'section[data-model="{MODEL}"]')
    sec.find_element("css selector", "textarea.prompt").send_keys(PROMPT)
    for field, value in ((".max-tokens", "30"), (".temperature", "0.7"), (".seed", "3")):
        box = sec.find_element("css selector", field)
        box.clear()
        box.send_keys(value)
    # Count the appends to the answer: a streamed answer grows once per event.
    browser.execute_script(
        "const out = arguments[0]; window.appends = 0;"
        "new MutationObserver(ms => { window.appends += ms.length; })"
        ".observe(out, {childList: true, subtree: true, characterData: true});",
        sec.find_element("css selector", ".result"),
    )
    sec.find_element("css selector", "button.complete").click()
    result = sec.find_element("css selector", ".result")
    WebDriverWait(browser, 20).until(lambda _: result.get_attribute("data-finish"))
    shown = sec.find_element("css selector", ".result .completion").get_attribute("textContent")
    sent = json.loads(sec.get_attribute("data-request"))
    assert sent == {
        "model": MODEL,
        "prompt": PROMPT,
        "stream": True,
        "max_tokens": 30,
        "temperature": 0.7,
        "seed": 3,
    }
    whole = client(server).completions.create(**{**sent, "stream": False})
    assert shown == whole.choices[0].text and shown
    assert result.get_attribute("data-finish") == whole.choices[0].finish_reason
    # One append per event that carries text (and the page's reset of the answer before).
    streamed = client(server).completions.create(**sent)
    pieces = [ch for ch in streamed if ch.choices and ch.choices[0].text]
    assert len(pieces) > 1 and browser.execute_script("return window.appends") > len(pieces)
    assert not sec.find_elements("css selector", ".result .error")
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "serve_lm_page.png"))
