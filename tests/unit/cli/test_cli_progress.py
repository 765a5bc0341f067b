"""The textual upload progress bar."""

import io

from mlkube.cli.progress import ProgressBar, format_bytes, render_bar


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_render_bar():
    assert render_bar(0, 100, width=10) == "[----------]   0%  0 B / 100 B"
    assert render_bar(50, 100, width=10) == "[#####-----]  50%  50 B / 100 B"
    assert render_bar(3 << 20, 3 << 20, width=4) == "[####] 100%  3.0 MiB / 3.0 MiB"
    assert render_bar(0, 0, width=2) == "[##] 100%  0 B / 0 B"


def test_format_bytes():
    assert [format_bytes(n) for n in (0, 1023, 1024, 5 << 30)] == [
        "0 B", "1023 B", "1.0 KiB", "5.0 GiB"
    ]  # fmt: skip


def test_terminal_redraws_once_per_percent():
    out = Tty()
    bar = ProgressBar("up", out)
    for done in range(0, 1001):
        bar(done, 1000)
    text = out.getvalue()
    assert text.count("\r") == 101  # 0..100 %
    assert text.endswith("100%  1000 B / 1000 B\n")


def test_logs_get_one_final_line():
    out = io.StringIO()
    bar = ProgressBar("up", out)
    for done in (0, 10, 20):
        bar(done, 20)
    assert out.getvalue() == "up [" + "#" * 30 + "] 100%  20 B / 20 B\n"
