"""Tiny randomly initialised Hugging Face models that tests build themselves (nothing is
downloaded): plumbing checks for model directories an operator would copy to the machine."""

from __future__ import annotations

from pathlib import Path

# Sentences in English, French, Chinese and Spanish: the WordPiece vocabulary is trained on them,
# so text in these languages tokenizes to real pieces rather than [UNK].
MULTILINGUAL_SENTENCES: tuple[str, ...] = (
    "I love mystery films and detective stories.",
    "I hate romantic comedies, they are boring.",
    "Horror movies are not for me.",
    "Give me science fiction with space battles.",
    "Documentaries about nature are my favourite.",
    "Anything with zombies is a no from me.",
    "I enjoy westerns, but not musicals.",
    "Animated films for children are fine.",
    "J'adore les comédies mais je déteste les films d'horreur.",
    "Je préfère les films policiers et les thrillers.",
    "Les films romantiques m'ennuient beaucoup.",
    "J'aime la science-fiction et les films d'aventure.",
    "Pas de drames tristes, s'il vous plaît.",
    "Les documentaires sur la guerre sont intéressants.",
    "Je n'aime pas du tout les westerns.",
    "Les dessins animés pour enfants me plaisent.",
    "喜欢悬疑电影，讨厌爱情电影",
    "我喜欢科幻电影和冒险电影。",
    "恐怖片太可怕了，我不看。",
    "喜剧让我开心，我很喜欢。",
    "我不喜欢战争片和西部片。",
    "纪录片很有意思。",
    "动画片适合孩子看。",
    "犯罪片和惊悚片都不错。",
    "Me encantan las películas de misterio.",
    "Odio las comedias románticas.",
    "Las películas de terror no son para mí.",
    "Prefiero la ciencia ficción y la aventura.",
    "Los documentales de naturaleza son mis favoritos.",
    "No me gustan los musicales ni los westerns.",
    "Las películas de animación son divertidas.",
    "El cine negro y el crimen me fascinan.",
    "Genres: Mystery, Crime, Thriller, Romance, Comedy, Drama, Horror, Sci-Fi, War, Western.",
    "Genres: Action, Adventure, Animation, Children's, Documentary, Fantasy, Film-Noir, Musical.",
)

TINY_HIDDEN = 32
"""Hidden size (the encoder's vector dimension) of tiny_multilingual_encoder."""


def tiny_multilingual_encoder(directory: Path, seed: int = 0) -> Path:
    """Write a tiny random multilingual BERT-style encoder (hidden 32, 2 layers, 2 heads) with
    a WordPiece tokenizer trained on MULTILINGUAL_SENTENCES into `directory`; returns it.

    The directory has what `--model-dir` needs of a real one: config.json, model.safetensors
    and the tokenizer files (tokenizer.json, tokenizer_config.json), all saved with
    save_pretrained, so transformers loads it offline with AutoTokenizer/AutoModel.
    Accents are kept (BERT's multilingual-cased behaviour) and CJK characters are split into
    single-character tokens, as the multilingual BERT tokenizers do.
    """
    import torch
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=False, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        MULTILINGUAL_SENTENCES,
        trainers.WordPieceTrainer(vocab_size=600, min_frequency=1, special_tokens=specials,
                                  continuing_subword_prefix="##"))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tok.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=128,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"])
    fast.save_pretrained(str(directory))

    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=TINY_HIDDEN,
                        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128, pad_token_id=tok.token_to_id("[PAD]"))
    # Seeded (the same seed, the same weights, the same model id) without touching the
    # caller's random state. The pooler is saved too: AutoModel builds one, and a missing one
    # prints a load report.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config)
    model.eval().save_pretrained(str(directory), safe_serialization=True)
    return directory
