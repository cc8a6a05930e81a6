"""Pretraining the tiny stand-in backbone so that it hears (speech recognition, alignment, distillation)."""
