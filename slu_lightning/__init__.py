"""slu-lightning: fine-tune Qwen2-Audio for spoken language understanding when speech is scarce."""

__version__ = "0.1.0"
