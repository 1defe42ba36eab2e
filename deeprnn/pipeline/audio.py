"""Rendering a MIDI file to WAV with the ``fluidsynth`` program and a General MIDI SoundFont, when installed."""
import os
import shutil
import subprocess
from pathlib import Path

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


def render_wav(midi_path, wav_path=None, sample_rate=44100):
    """Write ``wav_path`` (default: the MIDI path with .wav) with fluidsynth; returns it."""
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
    return wav_path
