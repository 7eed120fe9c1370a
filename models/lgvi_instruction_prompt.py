"""LGVI-I's text side without torch: the "v1_inpaint" conversation, the token layout around the image, the prompt
start of an answer, and a tiny LLaMA-style tokenizer for smoke tests and fixtures.

Only the standard library and (for the tiny tokenizer) ``sentencepiece`` are imported, so that the fixture script can
load this file next to an older transformers.
"""

import json
import os
from typing import List, Union

__all__ = [
    "INPAINT_SYSTEM_PROMPT",
    "build_inpaint_conversation",
    "prompt_start_index",
    "train_tiny_llama_tokenizer",
]

# Token ids of the tiny tokenizer: <unk>, <s>, </s>, then the 256 byte-fallback tokens, then the merges.
TINY_BYTE_TOKEN_IDS = range(3, 259)

# The "v1_inpaint" conversation template of the official LGVI-I code: system prompt, roles and separators.
INPAINT_SYSTEM_PROMPT = (
    "You are Inpaint Helper, an intelligent AI assistant that can read images and generate prompts to inform "
    "diffusion models which object to remove according to the user request and the input image contents.\n"
    'You should include the removal prompt with the format "{{prompt}} HERE IS THE PROMPT {{/prompt}} "\n'
    "Here are a few examples:\n"
    "1. \n"
    "User: I take a photo of my two dogs eating food. I want to split this photo to show each of them. Could you "
    "give me the photo with only the white dog?\n"
    "AI: Sure, this image contains two dogs eating food. One is white with curly hair. The other back to it is "
    "brown and white. I will remove the latter dog for you. {{prompt}} remove the brown dog behind the white dog "
    "{{/prompt}}\n"
    "User: Great! What about the picture with the other dog?\n"
    "AI: Sure. {{prompt}} remove the white dog {{/prompt}}\n"
    "2. \n"
    "User: Hey, here's a picture!\n"
    "AI: This picture shows a young man standing on a chair in a grassland.\n"
    "User: Can you let the person float in the air?\n"
    "AI: Of course, I can do it by removing the chair. Thus, the man looks like he is flying in the air. "
    "{{prompt}} remove the chair the man is standing on {{/prompt}}\n"
    "3. \n"
    "User: Who is strange in this image?\n"
    "AI: The image shows a scene of an ordinary park. There are sidewalks, trees, and grass. The strange person is "
    "a man crawling in the bottom right.\n"
    "User: So, can you remove him for me?\n"
    "AI: Sure, {{prompt}} remove the crawling man {{/prompt}}"
)
USER_ROLE, ASSISTANT_ROLE = "User", "Assistant"
IMAGE_MARKER = "<image>"
PROMPT_MARKER = "{{prompt}}"

def build_inpaint_conversation(request: str) -> str:
    """The official "v1_inpaint" prompt for one request: system, the user turn with the image, the open answer."""
    return f"{INPAINT_SYSTEM_PROMPT} {USER_ROLE}: {IMAGE_MARKER}\n{request} {ASSISTANT_ROLE}:"


def _ids_around_images(text: str, tokenizer) -> List[List[int]]:
    """Token ids of each ``<image>``-separated chunk, laid out as the official ``tokenizer_image_token``: the first
    chunk keeps its BOS, the later chunks drop theirs (each chunk is tokenized on its own)."""
    chunks = [tokenizer(chunk).input_ids for chunk in text.split(IMAGE_MARKER)]
    has_bos = len(chunks[0]) > 0 and chunks[0][0] == tokenizer.bos_token_id
    offset = 1 if has_bos else 0
    return [chunks[0]] + [chunk[offset:] for chunk in chunks[1:]]


def prompt_start_index(answer: str, tokenizer) -> int:
    """Number of tokens of ``answer`` before its last ``{{prompt}}`` marker, counted as the official
    ``get_prompt_id_start``: the text before the last marker (the pieces between earlier markers joined without
    them), ``<image>`` markers counted as one token each (two with a BOS), BOS included. Without a marker: 1."""
    before = "".join(answer.split(PROMPT_MARKER)[:-1])
    pieces = _ids_around_images(before, tokenizer)
    has_bos = len(pieces[0]) > 0 and pieces[0][0] == tokenizer.bos_token_id
    separator = 2 if has_bos else 1
    return sum(len(piece) for piece in pieces) + separator * (len(pieces) - 1)


def train_tiny_llama_tokenizer(folder: Union[str, os.PathLike], vocab_size: int = 320) -> None:
    """Write a tiny LLaMA-style sentencepiece tokenizer (BPE, byte fallback, <unk>/<s>/</s> = 0/1/2) in the
    ``llava-v1.5-7b`` file layout (tokenizer.model + tokenizer_config.json + special_tokens_map.json), trained on the
    inpainting conversation so that prompts take few tokens. Deterministic."""
    import io

    import sentencepiece

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 300:
        raise ValueError(f"vocab_size={vocab_size!r} must be an int >= 300 (256 byte tokens + 3 specials + merges)")
    corpus = build_inpaint_conversation(
        "I have this incredible shot of a pelican gliding in the sky, but there's another bird also captured in the "
        "frame. Can you help me make the picture solely about the pelican?"
    ).splitlines()
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, add_dummy_prefix=True,
        remove_extra_whitespaces=False, split_digits=True, character_coverage=1.0, num_threads=1,
        normalization_rule_name="identity", minloglevel=2,
    )
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "tokenizer.model"), "wb") as f:
        f.write(model.getvalue())
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    config = {**special, "add_bos_token": True, "add_eos_token": False, "pad_token": None, "legacy": False,
              "model_max_length": 2048, "padding_side": "right", "tokenizer_class": "LlamaTokenizer",
              "clean_up_tokenization_spaces": False, "sp_model_kwargs": {}}
    for name, payload in (("tokenizer_config.json", config), ("special_tokens_map.json", special)):
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, sort_keys=True)
