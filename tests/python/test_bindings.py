#!/usr/bin/env python3
"""Tests the generated Python bindings (bindings/python/chaya.py) for real.

Loads the built libchaya_uniffi.so through the generated module and drives a
small model: streaming, determinism, cancel from another thread, typed errors,
loading from bytes.

Usage: python3 tests/python/test_bindings.py [MODEL] [--lib LIBRARY | --installed]
  MODEL        model file (default: models/chaya-tiny-random.safetensors)
  LIBRARY      the cdylib (default: target/$PROFILE/libchaya_uniffi.so, PROFILE=debug)
  --installed  test the installed package `chaya` instead (tests/python/wheel.sh)
Paths are relative to the repository root. Ends with "python: N passed, N failed".
"""

import argparse
import atexit
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def import_chaya(lib):
    """Imports the generated module with the library beside it, as it expects."""
    folder = tempfile.mkdtemp(prefix="chaya-python-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.symlink(os.path.join(ROOT, "bindings", "python", "chaya.py"), os.path.join(folder, "chaya.py"))
    os.symlink(os.path.abspath(lib), os.path.join(folder, "libchaya_uniffi.so"))
    sys.path.insert(0, folder)
    import chaya  # noqa: E402

    return chaya


def seeded(chaya, **fields):
    fields.setdefault("max_tokens", 24)
    fields.setdefault("seed", 42)
    fields.setdefault("stop_at_eos", False)
    return chaya.GenerateOptions(**fields)


def main():
    if not __debug__:
        sys.exit("these tests are assert statements: run them without -O / PYTHONOPTIMIZE")
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default="models/chaya-tiny-random.safetensors")
    target = os.environ.get("CARGO_TARGET_DIR", "target")  # relative to ROOT, where cargo ran
    parser.add_argument("--lib", default=f"{target}/{os.environ.get('PROFILE', 'debug')}/libchaya_uniffi.so")
    parser.add_argument("--installed", action="store_true", help="test the installed package (a wheel) instead")
    args = parser.parse_args()
    model_path = os.path.join(ROOT, args.model)
    if args.installed:
        import chaya  # noqa: E402
    else:
        chaya = import_chaya(os.path.join(ROOT, args.lib))
    print(f"python: testing {os.path.dirname(os.path.realpath(chaya.__file__))}")
    model = chaya.Model.from_path(model_path, chaya.LoadOptions(threads=1))

    class Collect(chaya.TokenSink):
        """A token sink that keeps every piece; `on_piece(count)` decides whether to go on."""

        def __init__(self, on_piece=None):
            self.pieces = []
            self.on_piece = on_piece

        def on_token(self, text):
            self.pieces.append(text)
            return self.on_piece(len(self.pieces)) if self.on_piece else True

    def test_model_info():
        assert model.vocab_size() > 0 and model.context_length() > 0
        assert model.threads() == 1
        ids = model.encode("Once upon a time")
        assert ids and all(0 <= i < model.vocab_size() for i in ids)
        assert model.decode(ids) == "Once upon a time"

    def test_streams_pieces_that_make_the_text():
        sink = Collect()
        summary = model.new_session().generate("Once upon a time", seeded(chaya), sink)
        assert summary.stop_reason == chaya.StopReason.LENGTH, summary.stop_reason
        assert len(summary.tokens) == 24
        assert summary.prompt_tokens == len(model.encode("Once upon a time"))
        assert sink.pieces and all(sink.pieces)
        assert "".join(sink.pieces) == summary.text
        assert summary.time_to_first_token_ms > 0 and summary.decode_tokens_per_second > 0

    def test_same_seed_same_text():
        runs = [model.new_session().generate("The cat", seeded(chaya, seed=7), Collect()) for _ in range(2)]
        assert runs[0].text == runs[1].text and runs[0].tokens == runs[1].tokens

    def test_cancel_from_another_thread():
        session = model.new_session()
        started = threading.Event()
        result = {}

        def run():
            try:
                options = chaya.GenerateOptions(max_tokens=100000, stop_at_eos=False, seed=1)
                result["summary"] = session.generate("Hello", options, Collect(lambda n: started.set() or True))
            except Exception as e:  # reported below
                result["error"] = e

        thread = threading.Thread(target=run)
        thread.start()
        assert started.wait(60), "no token within 60 s"
        session.cancel()
        thread.join(60)
        assert not thread.is_alive(), "generation did not stop after cancel"
        assert "error" not in result, result.get("error")
        summary = result["summary"]
        assert summary.stop_reason == chaya.StopReason.CANCELLED, summary.stop_reason
        assert 0 < len(summary.tokens) < 100000

    def test_cancel_token_made_before_the_call():
        session = model.new_session()
        token = chaya.CancelToken()
        token.cancel()
        assert token.is_cancelled()
        sink = Collect()
        summary = session.generate("Hello there", seeded(chaya), sink, token)
        assert summary.stop_reason == chaya.StopReason.CANCELLED, summary.stop_reason
        assert (summary.tokens, summary.prefill_tokens, sink.pieces) == ([], 0, [])
        assert session.transcript() == "Hello there", session.transcript()
        # The token stops its own call only.
        after = session.generate("", seeded(chaya), Collect())
        assert after.stop_reason == chaya.StopReason.LENGTH, after.stop_reason
        whole = model.new_session().generate("Hello there", seeded(chaya), Collect())
        assert after.tokens == whole.tokens

    def test_cancel_token_from_another_thread():
        token = chaya.CancelToken()

        def cancel_at(n):
            if n == 3:
                threading.Thread(target=token.cancel).start()
                while not token.is_cancelled():
                    time.sleep(0.001)
            return True

        options = chaya.GenerateOptions(max_tokens=100000, stop_at_eos=False, seed=1)
        summary = model.new_session().generate("Hello", options, Collect(cancel_at), cancel=token)
        assert summary.stop_reason == chaya.StopReason.CANCELLED, summary.stop_reason
        assert len(summary.tokens) == 3, len(summary.tokens)

    def test_sink_returning_false_stops():
        summary = model.new_session().generate("Hi", seeded(chaya), Collect(lambda n: n < 3))
        assert summary.stop_reason == chaya.StopReason.CALLBACK
        assert len(summary.tokens) == 3

    def test_sink_exception_is_a_callback_error():
        def boom(n):
            raise ValueError("sink broke")

        try:
            model.new_session().generate("Hi", seeded(chaya), Collect(boom))
        except chaya.ChayaError.Callback as e:
            assert "sink broke" in str(e), str(e)
        else:
            raise AssertionError("no ChayaError.Callback")

    def test_generate_inside_the_sink_is_busy():
        session = model.new_session()
        errors = []

        def reenter(n):
            try:
                session.generate("again", seeded(chaya), Collect())
            except chaya.ChayaError.Busy as e:
                errors.append(e)
            return False

        session.generate("Hi", seeded(chaya), Collect(reenter))
        assert len(errors) == 1 and "another call is using the session" in str(errors[0])

    def test_score_agrees_with_greedy_generation_and_keeps_the_conversation():
        session = model.new_session()
        session.generate("Once upon a time", seeded(chaya, max_tokens=6), Collect())
        transcript = session.transcript()
        greedy = model.new_session()
        # The argmax of the model's own distribution: no penalty, no end-of-text stop.
        options = chaya.greedy_generate_options()
        options.max_tokens, options.stop_at_eos = 1, False
        greedy.generate(transcript, options, Collect())
        best = greedy.transcript()[len(transcript):]
        assert model.encode(best) != [] and len(model.encode(best)) == 1, best
        scores = {text: session.score(text) for text in (best, " the", ",", " river", "ing")}
        assert session.transcript() == transcript
        for text, scored in scores.items():
            assert [s.token for s in scored] == model.encode(text), (text, scored)
            assert all(s.logprob <= 0.0 for s in scored), scored
            assert scored[0].logprob <= scores[best][0].logprob + 1e-5, (text, scores)
        assert session.score("") == []
        # A context read without generating: the same scores as after a turn that ended there.
        reader = model.new_session()
        read = reader.generate(transcript, seeded(chaya, max_tokens=0), Collect())
        assert read.tokens == [] and read.text == "" and reader.transcript() == transcript
        pairs = list(zip(reader.score(" river"), session.score(" river")))
        assert pairs and all(a.token == b.token and math.isclose(a.logprob, b.logprob, abs_tol=1e-4) for a, b in pairs)

    def test_score_inside_the_sink_is_busy_and_a_text_past_the_window_is_invalid():
        session = model.new_session()
        errors = []

        def score_inside(n):
            try:
                session.score(" sea")
            except chaya.ChayaError.Busy as e:
                errors.append(e)
            return False

        session.generate("Hi", seeded(chaya), Collect(score_inside))
        assert len(errors) == 1 and "cannot score" in str(errors[0]), errors
        try:
            session.score(" sea" * model.context_length())
        except chaya.ChayaError.InvalidInput as e:
            assert "context window" in str(e), str(e)
        else:
            raise AssertionError("no ChayaError.InvalidInput")

    def test_invalid_temperature_is_invalid_option():
        try:
            model.new_session().generate("Hi", chaya.GenerateOptions(temperature=-1.0), Collect())
        except chaya.ChayaError.InvalidOption as e:
            assert "temperature" in str(e), str(e)
        else:
            raise AssertionError("no ChayaError.InvalidOption")

    def test_missing_file_is_io():
        try:
            chaya.Model.from_path(os.path.join(ROOT, "models", "no-such-model.safetensors"))
        except chaya.ChayaError.Io as e:
            assert "no-such-model" in str(e), str(e)
        else:
            raise AssertionError("no ChayaError.Io")

    def test_garbage_bytes_are_invalid_model():
        try:
            chaya.Model.from_bytes(b"not a model")
        except chaya.ChayaError.InvalidModel:
            pass
        else:
            raise AssertionError("no ChayaError.InvalidModel")

    def test_loads_from_bytes():
        with open(model_path, "rb") as f:
            from_bytes = chaya.Model.from_bytes(f.read(), chaya.LoadOptions(threads=1, context_length=64, prefill_chunk=3))
        assert from_bytes.vocab_size() == model.vocab_size()
        assert from_bytes.context_length() == 64
        assert from_bytes.prefill_chunk() == 3 and model.prefill_chunk() == 256
        options = seeded(chaya, max_tokens=8)
        a = from_bytes.new_session().generate("Once upon a time", options, Collect())
        b = model.new_session().generate("Once upon a time", options, Collect())
        assert a.tokens == b.tokens

    def test_session_keeps_the_conversation():
        session = model.new_session()
        first = session.generate("Once", seeded(chaya, max_tokens=4), Collect())
        second = session.generate(" more", seeded(chaya, max_tokens=4), Collect())
        assert second.reused_tokens > 0
        assert session.transcript() == "Once" + first.text + " more" + second.text
        session.reset()
        assert session.transcript() == ""

    def test_record_defaults_are_cores():
        record, core = chaya.GenerateOptions(), chaya.default_generate_options()
        for name in vars(core):
            a, b = getattr(record, name), getattr(core, name)
            same = math.isclose(a, b, rel_tol=1e-6) if isinstance(a, float) else a == b
            assert same, f"{name}: record default {a!r}, core {b!r}"
        assert chaya.greedy_generate_options().temperature == 0.0
        assert core.penalty_last_n == 64
        compat = chaya.compat_generate_options()
        assert compat.compat and compat.penalty_last_n == 0, compat

    def test_penalty_window_reaches_core():
        # "a" wins unless penalized, then "b" does: a penalized "a" comes back
        # as soon as it leaves the penalty window.
        a, b = model.encode("a"), model.encode("b")
        assert len(a) == len(b) == 1, (a, b)
        biases = [chaya.LogitBias(token_id=a[0], bias=200.0), chaya.LogitBias(token_id=b[0], bias=150.0)]
        texts = []
        for last_n in (0, 1):
            options = seeded(chaya, max_tokens=6, temperature=0.0, repetition_penalty=1.0,
                             presence_penalty=100.0, penalty_last_n=last_n, logit_bias=biases)
            texts.append(model.new_session().generate("x", options, Collect()).text)
        assert texts == ["abaaaa", "ababab"], texts

    def test_sink_exception_keeps_what_it_received():
        session = model.new_session()

        def boom(n):
            if n == 2:
                raise ValueError("sink broke")
            return True

        sink = Collect(boom)
        try:
            session.generate("Hi", seeded(chaya), sink)
        except chaya.ChayaError.Callback:
            pass
        else:
            raise AssertionError("no ChayaError.Callback")
        assert len(sink.pieces) == 2, sink.pieces
        assert session.transcript() == "Hi" + "".join(sink.pieces), session.transcript()

    tests = [(name, fn) for name, fn in locals().items() if name.startswith("test_")]
    passed = failed = 0
    for name, fn in tests:
        start = time.monotonic()
        try:
            fn()
            passed += 1
            print(f"ok   {name} ({time.monotonic() - start:.2f} s)", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - start:.2f} s)", flush=True)
            traceback.print_exc()
    print(f"python: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
