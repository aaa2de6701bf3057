"""Shared fixtures: one pipeline per test session (loading spaCy is the slow part)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "corpora" / "samples"


SHARED_ASSETS = ROOT.parent / "shared" / "assets"


@pytest.fixture(scope="session", autouse=True)
def medtext_home(tmp_path_factory) -> Path:
    """A private MEDTEXT_HOME for the session, with the default terminology index built once
    (the default preset's medtext_ner needs it)."""
    import os

    from medtext.terminologies.default import build_default_index, default_index_dir

    home = tmp_path_factory.mktemp("medtext_home")
    os.environ["MEDTEXT_HOME"] = str(home)
    if not SHARED_ASSETS.is_dir():
        pytest.exit("../shared/assets must be beside the checkout to build the terminology index")
    build_default_index(default_index_dir(), assets=SHARED_ASSETS)
    return home


@pytest.fixture(scope="session")
def nlp(medtext_home):
    import medtext

    return medtext.load()


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


def tiny_bert(path: Path, *, seed: int = 0, max_positions: int = 256) -> Path:
    """A tiny random BERT (one layer, width 32) with all-MiniLM-L6-v2's tokenizer, saved to
    ``path``: a stand-in backbone for the transformer models' tests."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from medtext.terminologies.embeddings import resolve_model

    tok = BertTokenizerFast.from_pretrained(resolve_model("all-MiniLM-L6-v2")[0])
    torch.manual_seed(seed)
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=max_positions)).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def make_pdf(path: Path, pages: list[list[str]], *, encrypt: str | None = None,
             font_size: float = 11) -> Path:
    """A small text PDF: each page a list of lines drawn top-down at x=72."""
    from reportlab.pdfgen import canvas

    kwargs = {}
    if encrypt:
        from reportlab.lib.pdfencrypt import StandardEncryption

        kwargs["encrypt"] = StandardEncryption(encrypt, canPrint=0)
    c = canvas.Canvas(str(path), pagesize=(612, 792), invariant=1, **kwargs)
    for lines in pages:
        y = 720
        for ln in lines:
            c.setFont("Helvetica", font_size)
            c.drawString(72, y, ln)
            y -= 16
        c.showPage()
    c.save()
    return path


@pytest.fixture
def bad_inputs(tmp_path: Path) -> Path:
    """A folder with one of every kind of bad input, plus two good notes."""
    d = tmp_path / "bad"
    d.mkdir()
    (d / "empty.txt").write_bytes(b"")
    (d / "blank.txt").write_text("   \n\n  ")
    (d / "binary.txt").write_bytes(b"\x00\x01\x02\x03" * 500)
    (d / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (d / "cp1252.txt").write_bytes("Allergies: penicillin \u2013 rash. Caf\u00e9 au lait spots.".encode("cp1252"))
    (d / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj <<>> garbage without xref\n")
    make_pdf(d / "encrypted.pdf", [["HPI: chest pain."]], encrypt="secret")
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(d / "scanned.pdf"), invariant=1)
    c.rect(100, 100, 300, 300, fill=1)  # ink, no text layer
    c.showPage()
    c.save()
    (d / "notes.docx").write_bytes(b"PK\x03\x04 not really")
    (d / "good.txt").write_text("HPI: 54 yo M with cough for 3 days.\nPLAN: CXR.\n")
    make_pdf(d / "good.pdf", [["FINDINGS: No effusion."], ["IMPRESSION: Normal chest."]])
    return d
