"""Text handling around the model: documents split into sentences and put back together, casing, language."""
