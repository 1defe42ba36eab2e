"""Rendering a MIDI file to WAV with the ``fluidsynth`` program and a General MIDI SoundFont, when installed.

fluidsynth renders at its default gain of 0.2, so a drum track peaks near 0.1 of full scale (-20 dBFS): too quiet
beside any other audio. ``normalize_peak`` scales the rendered samples so the loudest one sits at -1 dBFS, the
usual ceiling that leaves a little headroom for a player's resampling.
"""
import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy

from ..files import atomic_write

SOUNDFONT_ENV = "DEEPRNN_SOUNDFONT"
# Where Debian/Ubuntu (fluid-soundfont-gm, musescore-general-soundfont), Fedora and Homebrew put a GM SoundFont.
SOUNDFONT_PLACES = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
                    "/usr/share/soundfonts/default.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2",
                    "/usr/share/sounds/sf3/MuseScore_General.sf3", "/opt/homebrew/share/soundfonts/default.sf2",
                    "/usr/local/share/soundfonts/default.sf2")


class AudioUnavailable(RuntimeError):
    """fluidsynth or a SoundFont is missing; the message says how to get them."""


def find_soundfont():
    configured = os.environ.get(SOUNDFONT_ENV)
    if configured:
        if not Path(configured).is_file():
            raise AudioUnavailable(f"${SOUNDFONT_ENV}={configured}: no such file")
        return Path(configured)
    for place in SOUNDFONT_PLACES:
        if Path(place).is_file():
            return Path(place)
    raise AudioUnavailable("no General MIDI SoundFont found: install one (Debian/Ubuntu: apt install "
                           f"fluid-soundfont-gm) or set ${SOUNDFONT_ENV} to a .sf2 file")


PEAK_DBFS = -1.0
# PCM sample width in bytes -> the NumPy type of a sample (WAV's 8-bit PCM is unsigned, and fluidsynth never
# writes it)
PCM_TYPES = {2: numpy.int16, 4: numpy.int32}


def normalize_peak(wav_path, peak_dbfs=PEAK_DBFS):
    """Scale a PCM WAV file so its loudest sample is ``peak_dbfs`` of full scale; returns the gain applied.

    gain = 10^(peak_dbfs / 20) * full_scale / max|x|; a silent file is left as it is (gain 1). The file is
    rewritten atomically, so an interrupted run leaves the rendered file, never half a file.
    """
    wav_path = Path(wav_path)
    try:
        with wave.open(str(wav_path), "rb") as reader:
            params = reader.getparams()
            frames = reader.readframes(params.nframes)
    except (wave.Error, EOFError) as error:
        raise ValueError(f"{wav_path}: not a PCM WAV file ({error})") from None
    if params.sampwidth not in PCM_TYPES:
        raise ValueError(f"{wav_path}: {8 * params.sampwidth}-bit samples; only 16- and 32-bit PCM are normalized")
    sample_type = PCM_TYPES[params.sampwidth]
    stored = numpy.dtype(sample_type).newbyteorder("<")  # WAV samples are little-endian
    samples = numpy.frombuffer(frames, dtype=stored).astype(numpy.float64)
    peak = numpy.abs(samples).max(initial=0.0)
    if peak == 0:
        return 1.0
    full_scale = float(numpy.iinfo(sample_type).max)
    gain = 10 ** (peak_dbfs / 20) * full_scale / peak
    scaled = numpy.clip(numpy.round(samples * gain), -full_scale, full_scale).astype(stored)

    def write(handle):
        with wave.open(handle, "wb") as writer:
            writer.setparams(params)
            writer.writeframes(scaled.tobytes())

    atomic_write(wav_path, write)
    return gain


def render_wav(midi_path, wav_path=None, sample_rate=44100, peak_dbfs=PEAK_DBFS):
    """Write ``wav_path`` (default: the MIDI path with .wav) with fluidsynth, its peak normalized to
    ``peak_dbfs`` (None: as fluidsynth renders it); returns the path."""
    program = shutil.which("fluidsynth")
    if program is None:
        raise AudioUnavailable("the fluidsynth program is not installed (Debian/Ubuntu: apt install fluidsynth "
                               "fluid-soundfont-gm; macOS: brew install fluid-synth); the MIDI file plays in any "
                               "General MIDI player")
    soundfont = find_soundfont()
    wav_path = Path(wav_path) if wav_path else Path(midi_path).with_suffix(".wav")
    result = subprocess.run([program, "-ni", "-F", str(wav_path), "-r", str(sample_rate), str(soundfont),
                             str(midi_path)], capture_output=True, text=True)
    if result.returncode != 0 or not wav_path.is_file():
        raise AudioUnavailable(f"fluidsynth failed ({result.returncode}): {result.stderr.strip()[-300:]}")
    if peak_dbfs is not None:
        normalize_peak(wav_path, peak_dbfs)
    return wav_path
