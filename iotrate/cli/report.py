"""Commands that turn a saved result into things people read, print and check: ``label``,
``report``, ``keys new``, ``sign`` and ``verify``.

They work on result files rather than on a live scan, so a lab can scan once and print, sign
or re-render later, and a shop can print labels from results it was sent. Exit codes follow
:mod:`iotrate.cli.console`: 0 ok, 1 verification failed, 2 usage error, 3 runtime failure.
Messages are printed with ``say_out``/``say_err`` (no rich markup, control characters
dropped), because they can contain device strings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from iotrate.cli.console import EXIT_RUNTIME, EXIT_USAGE, say_err, say_out
from iotrate.errors import IotrateError, RuntimeFailure, UsageError

if TYPE_CHECKING:
    from iotrate.signing import LoadedResult

# Heavy modules (the renderers, cairosvg, cryptography) are imported inside the commands
# that use them, so that ``iotrate --help`` and the other commands start fast.

EXIT_MISMATCH = 1  # verify: a signature or label that does not match
FORMATS = ("svg", "png", "pdf")
T = TypeVar("T")


def _fail(exc: IotrateError) -> NoReturn:
    say_err(f"iotrate: error: {exc}")
    raise typer.Exit(EXIT_USAGE if isinstance(exc, UsageError) else EXIT_RUNTIME)


def _run(fn: Callable[[], T]) -> T:
    """Call ``fn`` and turn iotrate and OS errors into the documented exit codes."""
    try:
        return fn()
    except IotrateError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(RuntimeFailure(str(exc)))


def _write(path: Path, data: bytes | str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {path}: {exc}") from exc


def _formats(value: str) -> list[str]:
    chosen = [f.strip().lower() for f in value.split(",") if f.strip()]
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise UsageError(f"--format takes a comma list of {', '.join(FORMATS)}")
    return list(dict.fromkeys(chosen))


def _report_url(template: str | None, digest: str, scan_id: str) -> str | None:
    """``--report-url`` may name ``{digest}`` or ``{scan_id}`` so one option serves a batch."""
    from iotrate.reports.label import check_report_url

    if not template:
        return None
    url: str = check_report_url(template.replace("{digest}", digest).replace("{scan_id}", scan_id))
    return url


def _result_files(result: Path | None, from_dir: Path | None) -> list[Path]:
    if (result is None) == (from_dir is None):
        raise UsageError("give either a RESULT file or --from DIR")
    if result is not None:
        return [result]
    assert from_dir is not None
    if not from_dir.is_dir():
        raise UsageError(f"{from_dir} is not a directory")
    files = sorted(p for p in from_dir.glob("*.json") if p.is_file())
    if not files:
        raise UsageError(f"no *.json result files in {from_dir}")
    return files


def label_cmd(
    result: Annotated[
        Path | None, typer.Argument(help="A result JSON from iotrate scan.", show_default=False)
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the label files.")] = Path(
        "labels"
    ),
    formats: Annotated[str, typer.Option("--format", help="Comma list of svg, png, pdf.")] = (
        "svg,png"
    ),
    size: Annotated[
        str, typer.Option("--size", help="full (96 x 192 mm) or sticker (48 x 96 mm).")
    ] = "full",
    from_dir: Annotated[
        Path | None,
        typer.Option("--from", help="A folder of result JSONs (retail batch).", show_default=False),
    ] = None,
    sheet: Annotated[
        str | None,
        typer.Option(
            "--sheet",
            help="Print sheet: A4, A3 or Letter. Writes one PDF, one label per model.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The sheet PDF (with --sheet).")
    ] = None,
    report_url: Annotated[
        str | None,
        typer.Option(
            "--report-url",
            help="Where the report is published, for the QR code; may contain {digest} "
            "or {scan_id}.",
            show_default=False,
        ),
    ] = None,
    dpi: Annotated[int, typer.Option(min=72, max=1200, help="PNG resolution.")] = 300,
) -> None:
    """Draw each device's security label (SVG, PNG, PDF), or print sheets with --sheet."""
    from iotrate.reports import label as lbl
    from iotrate.signing import load_result

    def run() -> list[Path]:
        if size not in lbl.LABEL_SIZES:
            raise UsageError("--size must be full or sticker")
        chosen = "full" if size == "full" else "sticker"
        if (sheet is None) != (output is None):
            raise UsageError("--sheet and -o/--output go together (-o names the sheet PDF)")
        loaded = [load_result(p) for p in _result_files(result, from_dir)]
        datas = [
            lbl.label_data(
                d,
                lr.result,
                digest=lr.digest,
                report_url=_report_url(report_url, lr.digest, lr.result.scan_id),
            )
            for lr in loaded
            for d in lr.result.devices
        ]
        if sheet is not None and output is not None:
            from iotrate.reports import sheet as sheets

            models = sheets.one_per_model(datas)
            pdf = sheets.render_pdf(models, sheet, chosen)
            _write(output, pdf)
            g = sheets.grid(sheet, chosen)
            say_err(
                f"{len(models)} label(s) on {sheets.page_count(len(models), g)} "
                f"{g.sheet} page(s): {output}"
            )
            return [output]
        kinds = _formats(formats)
        written: list[Path] = []
        for lr in loaded:
            for d in lr.result.devices:
                data = next(x for x in datas if x.device_id == lbl.clean(d.id))
                svg = lbl.render_svg(data, chosen)
                stem = lbl.file_stem(d) + ("" if chosen == "full" else "-sticker")
                for kind in kinds:
                    path = out / f"{stem}.{kind}"
                    if kind == "svg":
                        _write(path, svg)
                    elif kind == "png":
                        _write(path, lbl.to_png(svg, dpi=dpi))
                    else:
                        _write(path, lbl.to_pdf(svg))
                    written.append(path)
        if not written:
            say_err("iotrate: the result has no devices: no labels written")
        return written

    written = _run(run)
    for path in written:
        say_out(str(path))
    if written and report_url is None:
        say_err("iotrate: note: no --report-url: the QR code carries the result digest only")


def report_cmd(
    result: Annotated[Path, typer.Argument(help="A result JSON written by iotrate scan.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")],
    report_url: Annotated[
        str | None,
        typer.Option(
            "--report-url", help="Where the report will be published (QR).", show_default=False
        ),
    ] = None,
) -> None:
    """Write a self-contained HTML report: summary, labels, findings with evidence and fixes."""
    from iotrate.reports import html
    from iotrate.signing import load_result

    def run() -> None:
        lr = load_result(result)
        url = _report_url(report_url, lr.digest, lr.result.scan_id)
        # The same builder as ``scan --report``: each device's texts come from its scheme.
        page = html.render(lr.result, digest=lr.digest, report_url=url)
        _write(output, page)

    _run(run)
    say_out(str(output))


keys_app = typer.Typer(help="Signing keys for results (ed25519).", no_args_is_help=True)


def _default_key_dir() -> Path:
    import platformdirs

    return platformdirs.user_config_path("iotrate") / "keys"


@keys_app.command("new")
def keys_new(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Where to write iotrate-signing.key (mode 0600) and .pub; "
            "default: the user config folder.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing keypair.")] = False,
) -> None:
    """Make a new signing keypair for this lab."""
    from iotrate import signing

    where = directory or _default_key_dir()
    priv, pub = _run(lambda: signing.new_keypair(where, force=force))
    key = _run(lambda: signing.load_public_key(pub))
    say_out(f"private key: {priv}")
    say_out(f"public key:  {pub}")
    say_out(f"key id:      {signing.key_id(key)}")


@keys_app.command("trust")
def keys_trust(
    name: Annotated[str, typer.Argument(help="Who signs with this key, e.g. the lab's name.")],
    pubkey: Annotated[Path, typer.Argument(help="Their public key (a .pub PEM file).")],
) -> None:
    """Trust a signer: verify then says "signed by NAME" for results this key signed."""
    from iotrate import signing

    def run() -> tuple[Path, str]:
        key = signing.load_public_key(pubkey)
        return signing.trust_key(name, key), signing.key_id(key)

    path, kid = _run(run)
    say_out(f"trusted {name}: key {kid} (in {path})")


@keys_app.command("list")
def keys_list() -> None:
    """The trusted signers and their key ids."""
    from iotrate import signing

    trusted = _run(signing.load_trusted)
    for name, key in sorted(trusted.items()):
        say_out(f"{signing.key_id(key)}  {name}")
    if not trusted:
        say_err("iotrate: no trusted signers yet (iotrate keys trust NAME FILE.pub)")


def sign_cmd(
    result: Annotated[Path, typer.Argument(help="The result JSON to sign.")],
    key: Annotated[
        Path | None,
        typer.Option(
            "--key", help="Private key (default: from iotrate keys new).", show_default=False
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Default: RESULT.json.sig.", show_default=False),
    ] = None,
) -> None:
    """Sign a result: writes a detached ed25519 signature envelope next to it."""
    from iotrate import signing

    def run() -> Path:
        k = signing.load_private_key(key or _default_key_dir() / signing.PRIVATE_KEY_NAME)
        lr = signing.load_result(result)
        envelope = signing.sign_value(lr.value, k)
        target = output or signing.signature_path(result)
        _write(target, json.dumps(envelope, indent=2, sort_keys=True) + "\n")
        say_err(f"signed sha256 {lr.digest} with key {signing.key_id(k.public_key())}")
        return target

    say_out(str(_run(run)))


def _check_label(path: Path, lr: LoadedResult) -> list[str]:
    """Problems of one ``--label`` SVG against the result; an ``ok:`` line when none."""
    from iotrate.reports.labelcheck import label_problems

    try:
        svg = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RuntimeFailure(f"cannot read {path}: {exc}") from exc
    try:
        found = label_problems(svg, lr.result, lr.digest)
    except UsageError as exc:  # not an iotrate label at all: invalid, not misuse
        found = [str(exc)]
    if not found:
        say_out(f"ok: label {path.name} matches the result")
    return [f"{path.name}: {p}" for p in found]


def verify_cmd(
    result: Annotated[Path, typer.Argument(help="The result JSON to check.")],
    label: Annotated[
        list[Path] | None,
        typer.Option("--label", help="A label SVG that must match the result (repeatable)."),
    ] = None,
    signature: Annotated[
        Path | None,
        typer.Option("--signature", help="Default: RESULT.json.sig.", show_default=False),
    ] = None,
    pubkey: Annotated[
        Path | None,
        typer.Option("--pubkey", help="The public key that must have signed.", show_default=False),
    ] = None,
    allow_unsigned: Annotated[
        bool, typer.Option("--allow-unsigned", help="Only check labels; no signature needed.")
    ] = False,
    any_signer: Annotated[
        bool,
        typer.Option(
            "--any-signer",
            help="Accept a valid signature by a key you have not trusted (proves the result "
            "is unchanged, not who signed it).",
        ),
    ] = False,
) -> None:
    """Check a result's signature and who made it, and that labels belong to it.
    Exit 0 ok, 1 mismatch or unknown signer."""
    from iotrate import signing

    def check_signature(value: object, sig_path: Path) -> list[str]:
        envelope = signing.load_json(sig_path)
        pinned = signing.load_public_key(pubkey) if pubkey else None
        checked = signing.check_envelope(value, envelope, trusted=pinned)
        if checked.problems or checked.signer is None:
            return checked.problems or ["the signature does not verify"]
        kid = checked.signer_id
        where = f"ed25519, key {kid}, {sig_path.name}"
        if pinned is not None:
            say_out(f"ok: signature valid ({where}); signed by the key in {pubkey}")
            return []
        name = signing.trusted_name(checked.signer, signing.load_trusted())
        if name is not None:
            say_out(f"ok: signature valid ({where}); signed by {name}")
            return []
        unknown = (
            f"signed by an UNKNOWN key {kid}: not one of your trusted signers "
            "(iotrate keys trust NAME FILE.pub, or --pubkey FILE)"
        )
        if not any_signer:
            return [unknown]
        say_out(f"ok: signature valid ({where}); signer not trusted (--any-signer)")
        say_err(
            f"WARNING: {unknown}. This proves the result is unchanged since signing, "
            "not who signed it."
        )
        return []

    def run() -> list[str]:
        lr = signing.load_result(result)
        problems: list[str] = []
        sig_path = signature or signing.signature_path(result)
        if sig_path.exists() or signature is not None or not allow_unsigned:
            if not sig_path.exists():
                problems.append(f"not signed: no signature file {sig_path}")
            else:
                problems += check_signature(lr.value, sig_path)
        for path in label or []:
            problems += _check_label(path, lr)
        say_out(f"result sha256 {lr.digest}")
        return problems

    problems = _run(run)
    for p in problems:
        say_err(f"FAIL: {p}")
    if problems:
        raise typer.Exit(EXIT_MISMATCH)
