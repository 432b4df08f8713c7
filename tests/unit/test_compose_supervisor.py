"""An assisting supervisor's voice in the composed QA file: mixed in only during barge-ins (never a whisper),
from the windows the composer reads off the session's events.

The call through real peers is in tests/webrtc/test_assist_recording.py; here the inputs are tones written the
way the recorder writes them, so each window is checked exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from server.recording.compose import ComposeInputs, TrackInput, compose
from server.recording.composer import BARGE_GUARD_S, barge_args, barge_windows
from server.storage.records import SessionEvent
from tests.unit.test_compose import audio_of, run_cli, write_tone

CUSTOMER_HZ, REP_HZ, SUPERVISOR_HZ = 440.0, 880.0, 660.0
SECONDS = 6.0


def level(samples: np.ndarray, hz: float, start_s: float, end_s: float) -> float:
    """Spectral peak near ``hz`` in [start_s, end_s), relative to the window's strongest peak (0..1)."""
    window = samples[int(start_s * 48_000) : int(end_s * 48_000)]
    spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window))))
    freqs = np.fft.rfftfreq(len(window), 1 / 48_000)
    return float(spectrum[np.abs(freqs - hz) < 5].max()) / (float(spectrum.max()) + 1e-9)


def tones(tmp_path: Path) -> tuple[Path, Path, Path]:
    return (
        write_tone(tmp_path / "customer-audio.mka", CUSTOMER_HZ, SECONDS),
        write_tone(tmp_path / "rep-audio.mka", REP_HZ, SECONDS),
        # The supervisor's track begins later in the call, at 1 s (its offset).
        write_tone(tmp_path / "supervisor-audio.mka", SUPERVISOR_HZ, SECONDS - 1.0),
    )


def test_the_supervisor_is_mixed_in_only_inside_the_barge_in(tmp_path: Path) -> None:
    customer, rep, supervisor = tones(tmp_path)
    inputs = ComposeInputs(
        TrackInput(None),
        TrackInput(None),
        TrackInput(customer),
        TrackInput(rep),
        supervisor_audio=TrackInput(supervisor, 1.0),
        supervisor_windows=((3.0, 4.5),),
    )
    result = compose(inputs, tmp_path / "out.webm")
    assert abs(result.duration_s - SECONDS) < 0.1, result  # the supervisor's track does not lengthen it
    mix = audio_of(result.path)
    assert level(mix, SUPERVISOR_HZ, 3.2, 4.3) > 0.5, "the barge-in is missing from the mix"
    for start, end in ((1.2, 2.8), (4.7, 5.8)):  # the supervisor's track plays here, but no barge-in
        assert level(mix, SUPERVISOR_HZ, start, end) < 0.05, f"the supervisor is in the mix at {start}-{end} s"
    for hz in (CUSTOMER_HZ, REP_HZ):
        assert min(level(mix, hz, 0.2, 2.8), level(mix, hz, 3.2, 4.3)) > 0.5


def test_without_a_barge_in_the_supervisor_track_is_left_out(tmp_path: Path) -> None:
    customer, rep, supervisor = tones(tmp_path)
    inputs = ComposeInputs(
        TrackInput(None), TrackInput(None), TrackInput(customer), TrackInput(rep), TrackInput(supervisor, 1.0)
    )
    mix = audio_of(compose(inputs, tmp_path / "out.webm").path)
    assert level(mix, SUPERVISOR_HZ, 0.2, SECONDS - 0.2) < 0.05


def test_the_cli_takes_barge_ins_open_ended_to_the_end(tmp_path: Path) -> None:
    customer, rep, supervisor = tones(tmp_path)
    output = tmp_path / "cli.webm"
    code, lines = run_cli(
        *("--customer-audio", str(customer), "--rep-audio", str(rep)),
        *("--supervisor-audio", str(supervisor), "--supervisor-audio-offset", "1.0"),
        *barge_args([(4.0, None)]),
        *("--output", str(output)),
    )
    assert code == 0 and lines[-1].get("done") is True, lines[-1:]
    mix = audio_of(output)
    assert level(mix, SUPERVISOR_HZ, 4.2, 5.8) > 0.5
    assert level(mix, SUPERVISOR_HZ, 1.2, 3.8) < 0.05
    code, lines = run_cli("--customer-audio", str(customer), "--barge", "4", "--output", str(output))
    assert code == 1 and "START:END" in str(lines[-1]["error"]), lines


def events(*steps: tuple[float, str]) -> list[SessionEvent]:
    return [SessionEvent(at=at, kind=kind, detail={"by": "Sup1"}) for at, kind in steps]


def test_barge_windows_come_from_the_events_and_never_cover_a_whisper() -> None:
    t0, g = 1000.0, BARGE_GUARD_S
    steps = events(
        (1002.0, "assist.listen"),
        (1003.0, "help.closed"),
        (1004.0, "assist.whisper"),
        (1006.0, "assist.barge"),
        (1009.0, "assist.whisper"),
        (1011.0, "assist.barge"),
        (1012.0, "assist.left"),
        (1015.0, "assist.listen"),
        (1016.0, "assist.take_over"),
    )
    assert barge_windows(steps, t0) == [(6.0 + g, 9.0 - g), (11.0 + g, 12.0 - g), (16.0 + g, None)]
    assert barge_windows(events((1001.0, "assist.listen"), (1003.0, "assist.whisper")), t0) == []
    # A barge-in shorter than both guards is no window at all.
    assert barge_windows(events((1001.0, "assist.barge"), (1001.1, "assist.listen")), t0) == []
