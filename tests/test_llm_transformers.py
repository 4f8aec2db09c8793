"""The transformers backend with a LoRA adapter: the path fine-tuned adapters take.

A tiny randomly initialised Llama and a byte-level BPE tokenizer are built offline in a temp dir (no hub),
so the test exercises real loading, chat templating, peft adapter application and generation in seconds.
The real SmolLM2 GGUF through transformers (dequantised, minutes to load on 2 cores) is slow-tier.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from synthesis.llm import LLM, LLMError, make_llm
from synthesis.llm.registry import SMOLLM2, pull

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
MESSAGES = [{"role": "user", "content": "Summarise: median survival 25.5 months."}]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    directory = tmp_path_factory.mktemp("tiny-llama")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|im_start|>", "<|im_end|>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["median overall survival in months", "hazard ratio for progression"], trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                                     pad_token="<pad>", bos_token="<|im_start|>")
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(directory)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=512, eos_token_id=tokenizer.eos_token_id,
                                      pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id)
    transformers.LlamaForCausalLM(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh LoRA adapter with non-zero weights (peft's default init is a no-op), saved to disk."""
    directory = tmp_path_factory.mktemp("lora")
    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_model)
    torch.manual_seed(1)
    config = peft.LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj", "o_proj"],
                             init_lora_weights=False)
    peft.get_peft_model(base, config).save_pretrained(directory)
    return directory


def test_base_model_generates(tiny_model: Path) -> None:
    with make_llm("transformers", str(tiny_model)) as llm:
        assert isinstance(llm, LLM)
        assert llm.capabilities.json_schema is False and llm.capabilities.max_context == 512
        first = llm.complete(MESSAGES, max_tokens=6)
        assert first.tokens_out > 0 and first.tokens_in > 5
        assert llm.complete(MESSAGES, max_tokens=6).text == first.text  # greedy: deterministic
        with pytest.raises(LLMError, match="does not support streaming"):
            list(llm.stream(MESSAGES))


def test_lora_adapter_is_applied(tiny_model: Path, adapter: Path) -> None:
    with make_llm("transformers", str(tiny_model)) as base:
        base_text = base.complete(MESSAGES, max_tokens=8).text
    with make_llm("transformers", str(tiny_model), adapter_dir=str(adapter)) as tuned:
        assert tuned.name.endswith(f"+{adapter.name}")
        tuned_result = tuned.complete(MESSAGES, max_tokens=8)
    assert tuned_result.tokens_out > 0
    assert tuned_result.text != base_text, "a non-zero LoRA must change the greedy output"


def test_bad_adapter_and_model_paths_are_clear_errors(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="not a peft adapter directory"):
        make_llm("transformers", str(tiny_model), adapter_dir=str(tmp_path))
    with pytest.raises(LLMError, match="not a model directory"):
        make_llm("transformers", str(tmp_path / "nowhere"))
    with pytest.raises(LLMError, match="needs model="):
        make_llm("transformers")


@pytest.mark.slow
def test_smollm2_gguf_through_transformers(tmp_path: Path) -> None:
    """The real GGUF dequantised by transformers (needs `gguf`): minutes on 2 cores, hence slow-tier."""
    pytest.importorskip("gguf")
    pull(SMOLLM2.name, tmp_path)
    with make_llm("transformers", SMOLLM2.name, tmp_path) as llm:
        result = llm.complete([{"role": "user", "content": "What is the capital of France?"}], max_tokens=12)
    assert "Paris" in result.text
