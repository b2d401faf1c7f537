from odin.logging import WandbLogger, scrub


def test_scrub_removes_secret_keys_and_values(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-value")
    config = {"prompt": {"api_key": "x", "base_url": "http://h/v1?key=sk-very-secret-value", "model": "m"},
              "list": ["sk-very-secret-value", "fine"], "token": 3}
    clean = scrub(config)
    assert clean["prompt"]["api_key"] == "<redacted>" and clean["token"] == "<redacted>"
    assert clean["prompt"]["model"] == "m" and clean["list"][1] == "fine"
    assert "sk-very-secret-value" not in repr(clean)


def test_wandb_offline_run_has_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-another-secret-1234")
    logger = WandbLogger(project="odin-test")
    logger.start({"prompt": {"model": "gpt", "note": "sk-another-secret-1234"}}, tmp_path, name="t")
    logger.log({"top1": 50.0}, step=1)
    logger.log_table("prompts", ["label", "prompt"], [["seven", "a seven"]])
    logger.finish({"top1": 50.0})
    files = list((tmp_path / "wandb").rglob("*"))
    assert any(f.name.endswith(".wandb") for f in files)
    for f in files:
        if f.is_file():
            assert b"sk-another-secret-1234" not in f.read_bytes()
