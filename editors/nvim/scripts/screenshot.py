"""Screenshot of holefill's ghost text in a real terminal: Neovim in tmux, the pane captured with
its colours (`tmux capture-pane -e`) and drawn to a PNG.

    python editors/nvim/scripts/screenshot.py OUT.png [--wait-model 60] [--wait-ghost 30]

Needs tmux, nvim >= 0.11, Pillow and a monospace TrueType font (DejaVu Sans Mono).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[3]
PLUGIN = ROOT / "editors" / "nvim"
FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/dejavu/DejaVuSansMono.ttf",
]

# xterm's 16 colours, then the 6x6x6 cube and the grey ramp.
BASE16 = [
    (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205),
    (0, 205, 205), (229, 229, 229), (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0),
    (92, 92, 255), (255, 0, 255), (0, 255, 255), (255, 255, 255),
]  # fmt: skip


def xterm256(n: int) -> tuple[int, int, int]:
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return steps[n // 36], steps[(n // 6) % 6], steps[n % 6]
    v = 8 + (n - 232) * 10
    return v, v, v


SGR = re.compile(r"\x1b\[([0-9;:]*)m")


def parse(ansi: str, default_fg, default_bg):
    """Rows of (char, fg, bg, bold, italic) cells from tmux's escaped capture."""
    rows = []
    fg, bg, bold, italic, reverse = None, None, False, False, False
    for line in ansi.split("\n"):
        cells = []
        pos = 0
        for m in SGR.finditer(line):
            for ch in line[pos : m.start()]:
                f, b = (fg or default_fg), (bg or default_bg)
                cells.append((ch, b if reverse else f, f if reverse else b, bold, italic))
            pos = m.end()
            codes = [int(c) if c else 0 for c in re.split("[;:]", m.group(1) or "0")]
            i = 0
            while i < len(codes):
                c = codes[i]
                if c == 0:
                    fg, bg, bold, italic, reverse = None, None, False, False, False
                elif c == 1:
                    bold = True
                elif c == 3:
                    italic = True
                elif c == 7:
                    reverse = True
                elif c == 22:
                    bold = False
                elif c == 23:
                    italic = False
                elif c == 27:
                    reverse = False
                elif 30 <= c <= 37:
                    fg = BASE16[c - 30]
                elif 90 <= c <= 97:
                    fg = BASE16[c - 90 + 8]
                elif 40 <= c <= 47:
                    bg = BASE16[c - 40]
                elif 100 <= c <= 107:
                    bg = BASE16[c - 100 + 8]
                elif c == 39:
                    fg = None
                elif c == 49:
                    bg = None
                elif c in (38, 48) and i + 1 < len(codes):
                    if codes[i + 1] == 5 and i + 2 < len(codes):
                        color = xterm256(codes[i + 2])
                        i += 2
                    elif codes[i + 1] == 2 and i + 4 < len(codes):
                        color = tuple(codes[i + 2 : i + 5])
                        i += 4
                    else:
                        color = None
                    if c == 38:
                        fg = color
                    else:
                        bg = color
                i += 1
        for ch in line[pos:]:
            f, b = (fg or default_fg), (bg or default_bg)
            cells.append((ch, b if reverse else f, f if reverse else b, bold, italic))
        rows.append(cells)
    return rows


def render(rows, width: int, out: Path, default_fg, default_bg) -> None:
    font_path = next((f for f in FONTS if Path(f).exists()), None)
    if font_path is None:
        raise SystemExit("no monospace font found (DejaVu Sans Mono)")
    size = 16
    fonts = {
        (False, False): ImageFont.truetype(font_path, size),
        (True, False): ImageFont.truetype(font_path.replace(".ttf", "-Bold.ttf"), size),
        (False, True): ImageFont.truetype(font_path.replace(".ttf", "-Oblique.ttf"), size),
        (True, True): ImageFont.truetype(font_path.replace(".ttf", "-BoldOblique.ttf"), size),
    }
    cw = round(fonts[(False, False)].getlength("M"))
    ch = size + 6
    pad = 12
    img = Image.new("RGB", (width * cw + 2 * pad, len(rows) * ch + 2 * pad), default_bg)
    draw = ImageDraw.Draw(img)
    for y, cells in enumerate(rows):
        x = 0
        for char, fg, bg, bold, italic in cells:
            wide = 2 if ord(char) > 0x1100 and char not in "│─" else 1
            box = (pad + x * cw, pad + y * ch, pad + (x + wide) * cw, pad + (y + 1) * ch)
            if bg != default_bg:
                draw.rectangle(box, fill=bg)
            if char.strip():
                draw.text((box[0], box[1] + 2), char, font=fonts[(bold, italic)], fill=fg)
            x += wide
    img.save(out)


def tmux(*args: str, check: bool = True) -> str:
    return subprocess.run(
        ["tmux", "-L", "holefill-shot", *args], capture_output=True, text=True, check=check
    ).stdout


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--wait-model", type=float, default=60)
    parser.add_argument("--wait-ghost", type=float, default=30)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    if not shutil.which("tmux") or not shutil.which("nvim"):
        raise SystemExit("needs tmux and nvim")
    width, height = 92, 24
    work = Path(tempfile.mkdtemp(prefix="holefill-shot-"))
    sample = work / "inventory.py"
    lines = (ROOT / "examples" / "inventory.py").read_text().splitlines(keepends=True)
    sample.write_text("".join(lines[12:32]))
    init = work / "init.lua"
    init.write_text(
        f"""
vim.opt.rtp:prepend({str(PLUGIN)!r})
vim.o.termguicolors = true
vim.o.number = true
vim.o.laststatus = 2
vim.o.statusline = " %f %= %{{v:lua.require'holefill'.status()}} "
vim.cmd.colorscheme("default")
require("holefill").setup({{ python = {args.python!r}, settings = {{ maxNewTokens = 32 }} }})
"""
    )
    tmux("kill-server", check=False)
    tmux(
        "-f", "/dev/null", "new-session", "-d", "-s", "shot", "-x", str(width), "-y", str(height),
        f"cd {work} && nvim --clean -u {init} {sample}",
    )  # fmt: skip
    tmux("set-option", "-g", "default-terminal", "tmux-256color", check=False)
    tmux("set-option", "-ga", "terminal-overrides", ",*:RGB", check=False)
    try:
        time.sleep(3)
        deadline = time.time() + args.wait_model
        while time.time() < deadline and "holefill: ready" not in tmux(
            "capture-pane", "-p", "-t", "shot"
        ):
            time.sleep(1)
        tmux("send-keys", "-t", "shot", "G", "o")
        time.sleep(0.3)
        tmux("send-keys", "-t", "shot", "-l", "return ")  # after autoindent
        deadline = time.time() + args.wait_ghost
        while time.time() < deadline:
            time.sleep(1)
            if re.search(r"return \S", tmux("capture-pane", "-p", "-t", "shot")):
                break
        time.sleep(0.5)
        ansi = tmux("capture-pane", "-p", "-e", "-t", "shot")
    finally:
        tmux("kill-server", check=False)
    default_fg, default_bg = (224, 226, 234), (20, 22, 27)  # Neovim 0.11's default dark scheme
    rows = parse(ansi.rstrip("\n"), default_fg, default_bg)
    render(rows, width, args.out, default_fg, default_bg)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
