"""Small builders the test modules share (import as ``from factories import conv``)."""

from __future__ import annotations


def conv(q: str, a: str) -> list[dict[str, str]]:
    """A one-turn conversation: the user asks ``q``, the assistant answers ``a``.

    >>> conv("2+2?", "4")[1]
    {'role': 'assistant', 'content': '4'}
    """
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


def save_tiny_model(folder, **kwargs):
    """A tiny random LLaMA (:func:`zsg_lib.train.models.tiny_model` with ``kwargs``) saved as a
    Hugging Face folder (safetensors weights, tokenizer): a model that loads by its path, in
    any precision, 4-bit included. Returns the folder as a string."""
    from pathlib import Path

    from zsg_lib.train.models import tiny_model

    model, tok = tiny_model(**kwargs)
    model.save_pretrained(Path(folder), safe_serialization=True)
    tok.save_pretrained(Path(folder))
    return str(folder)


def kill_and_resume(script: str, tmp_path, wait_s: float, after_s: float):
    """A run killed mid-way, resumed, and the same run uninterrupted: ``script`` (Python text
    whose ``main(root, delay)`` trains one run under ``root``, sleeping ``delay`` s after each
    step) runs in a subprocess that is SIGKILLed ``after_s`` after its first checkpoint
    appears (within ``wait_s``); then, in this process, ``main`` resumes it and trains it
    afresh in a second folder (each state from disk only). Asserts the kill left an
    unfinished run with a checkpoint, that both finished as one run id, and that the resumed
    one really resumed. Returns ``(resumed_dir, clean_dir)``."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from zsg_lib.train import records

    path = Path(tmp_path) / "job.py"
    path.write_text(script)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    killed_root, clean_root = Path(tmp_path) / "killed", Path(tmp_path) / "clean"
    proc = subprocess.Popen([sys.executable, str(path), str(killed_root), "0.15"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, ckpt = time.time() + wait_s, None
    while time.time() < deadline and proc.poll() is None:
        found = list(killed_root.glob(f"*/{records.CHECKPOINT}"))
        if found:
            ckpt = found[0]
            break
        time.sleep(0.02)
    assert ckpt is not None, f"no checkpoint appeared: {proc.stderr.read().decode()[-2000:]}"
    time.sleep(after_s)  # kill somewhere after the first checkpoint: mid-step or mid-scoring
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    run_dir = ckpt.parent
    assert not records.is_done(run_dir) and (run_dir / records.CHECKPOINT).exists()

    job: dict = {"__name__": "job"}
    exec(compile(script, str(path), "exec"), job)
    for root in (killed_root, clean_root):
        job["main"](str(root), 0.0)
    clean_dir = next(clean_root.glob(f"*/{records.DONE}")).parent
    assert clean_dir.name == run_dir.name and records.is_done(run_dir)
    done = json.loads((run_dir / records.DONE).read_text())
    assert done["resumed_from"] > 0  # it really resumed rather than starting over
    return run_dir, clean_dir
