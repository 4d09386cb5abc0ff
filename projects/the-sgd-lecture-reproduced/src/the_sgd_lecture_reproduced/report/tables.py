"""Result tables as Markdown and LaTeX, written with pandas (DataFrame.to_markdown, which uses
tabulate, and DataFrame.to_latex), and copied into report.md and the slides between markers.

    from the_sgd_lecture_reproduced.report.tables import format_cell, markdown
    print(markdown(["configuration", "val/acc (final)"], [["adam", format_cell([0.97, 0.96])]]))
"""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tabulate import DataRow, Line, TableFormat

# A Markdown table whose rows are `| a | b |`, with no padding of the cells, so that a row is
# easy to read back (and to diff); tabulate's "pipe" format pads them.
MARKDOWN = TableFormat(lineabove=None, linebelowheader=Line("| ", "-", " | ", " |"), linebetweenrows=None,
                       linebelow=None, headerrow=DataRow("| ", " | ", " |"), datarow=DataRow("| ", " | ", " |"),
                       padding=0, with_header_hide=None)


def format_cell(numbers: Sequence[float]) -> str:
    """The value (4 significant digits), or mean ± standard deviation (n - 1) over seeds; `-` for none."""
    numbers = pd.Series(numbers, dtype=float)
    if numbers.empty:
        return "-"
    if len(numbers) == 1:
        return f"{numbers.iloc[0]:.4g}"
    return f"{numbers.mean(skipna=False):.4g} ± {numbers.std(skipna=False):.2g}"  # a diverged seed (nan) shows


def markdown(header: list[str], rows: list[list[str]], sources: list[str] | None = None) -> str:
    """A Markdown table of the rows; with `sources`, a list of the runs behind each row under it."""
    frame = pd.DataFrame(rows, columns=header).map(lambda cell: cell.replace("|", "\\|"))
    lines = frame.to_markdown(index=False, tablefmt=MARKDOWN, stralign=None, numalign=None,
                              disable_numparse=True).split("\n")
    lines[1] = "| " + " | ".join(["---"] * len(header)) + " |"  # the rule under the header, whatever the widths
    text = "\n".join(lines)
    if sources:
        text += "\n\nRuns behind each row:\n\n"
        text += "\n".join(f"- {row[0]}: {source}" for row, source in zip(rows, sources, strict=True))
    return text + "\n"


def latex(header: list[str], rows: list[list[str]]) -> str:
    """A booktabs table (\\usepackage{booktabs}) to \\input into a LaTeX report."""
    frame = pd.DataFrame(rows, columns=header)
    text = frame.to_latex(index=False, escape=True, column_format="l" + "r" * (len(header) - 1))
    return text.replace("±", r"$\pm$").replace("…", r"\ldots{}")


def embed_table(document: Path, table: str, start_marker: str, end_marker: str) -> bool:
    """Put `table` between the markers of `document`; False if it has none."""
    if not document.is_file():
        return False
    text = document.read_text()
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        return False
    updated = text[: start + len(start_marker)] + "\n" + table + text[end:]
    if updated != text:
        document.write_text(updated)
    return True
