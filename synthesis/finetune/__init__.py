"""Fine-tuning: supervised datasets from real labels and verified teacher outputs, LoRA training (peft) on any
Hugging Face causal LM (a GGUF base is dequantised through transformers), evaluation before and after, export
to a merged GGUF that llama.cpp serves, and registration beside the registry models.

    data.py        build datasets: splits by record id, dataset cards, teacher labels kept only when verified
    train.py       the LoRA training loop (nanoGPT-style: defaults at the top, resolved config saved per run)
    export_gguf.py base GGUF + LoRA adapter -> merged GGUF for llama.cpp
    evaluate.py    metrics on a held-out split (PubMedQA accuracy / macro-F1; extraction verified-field rate, F1)
    local_models.py the manifest of fine-tuned models under <models dir>/local_models.json

See README.md for the commands and the measured results.
"""
