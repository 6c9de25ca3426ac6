import json

from tests.cli.test_upscale import bsrn
from tests.conftest import write_image


def test_eval_bicubic_json_has_the_documented_shape(set5):
    result = bsrn("eval", set5, "-s", 3, "--model", "bicubic", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["dataset"] == "Set5" and record["scale"] == 3 and record["model"] == "bicubic"
    assert [r["name"] for r in record["images"]] == ["baby", "bird", "butterfly", "head", "woman"]
    assert abs(record["psnr"] - sum(r["psnr"] for r in record["images"]) / 5) < 1e-9


def test_eval_table_shows_published_rows(set5):
    result = bsrn("eval", set5, "-s", 4, "--model", "bicubic")
    assert result.returncode == 0, result.stderr
    assert "mean" in result.stdout and "Xin2020" in result.stdout


def test_eval_of_a_folder_without_images_is_one_line(tmp_path):
    (tmp_path / "HR").mkdir()
    result = bsrn("eval", tmp_path, "-s", 2, "--model", "bicubic")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "no HR images" in result.stderr


def test_eval_lr_size_mismatch_is_one_line(tmp_path):
    write_image(tmp_path / "HR" / "a.png", size=(40, 40))
    write_image(tmp_path / "LR_bicubic" / "X2" / "a.png", size=(19, 20))
    result = bsrn("eval", tmp_path, "-s", 2, "--model", "bicubic")
    assert result.returncode == 1 and "is not the HR size" in result.stderr
    assert "Traceback" not in result.stderr


def test_eval_unreadable_image_is_one_line(tmp_path):
    write_image(tmp_path / "HR" / "good.png", size=(40, 40))
    (tmp_path / "HR" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = bsrn("eval", tmp_path, "-s", 2, "--model", "bicubic")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error:") and "bad.png" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_eval_plain_hr_folder_generates_lr(tmp_path):
    write_image(tmp_path / "a.png", size=(36, 24))
    result = bsrn("eval", tmp_path, "-s", 3, "--model", "bicubic", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["images"][0]["name"] == "a"


def test_eval_unknown_backend_is_one_line(set5):
    result = bsrn("eval", set5, "-s", 2, "--backend", "quantum")
    assert result.returncode == 2  # a usage mistake
    assert result.stderr == "error: --backend: unknown backend 'quantum'; choose auto, packed, torch\n"


def test_eval_without_a_scale_is_a_usage_mistake(set5):
    result = bsrn("eval", set5)
    assert result.returncode == 2
    assert result.stderr == "error: -s/--scale: missing; give -s 2, 3 or 4 (or --model FILE)\n"
