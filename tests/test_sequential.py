"""Sequential recommenders' parts: user encoders, chronological sequences, leave-one-out, next-item losses.

Real data: the Amazon Games-6k files and MovieLens-100K from ../shared. The end-to-end check trains an
ID SASRec built from these parts with plain torch on a toy next-item data set.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from recfit.data.sequence_batches import PAD, NextItemCollator, history_batch
from recfit.data.sequences import (
    TEST,
    VAL,
    UserSequences,
    evaluation_examples,
    history_codes,
    leave_one_out,
    prefix_examples,
    read_interactions_csv,
    read_item_list_sequences,
    sequences_from_recdata,
    window_examples,
)
from recfit.data.sources.movielens import read_movielens_100k
from recfit.data.sources.recbole import read_amazon_games, read_atomic_file
from recfit.errors import ConfigError, DataError
from recfit.evaluation.ranking import ranking_metrics, top_k_items
from recfit.models.user_encoders import (
    GRUEncoder,
    MeanEncoder,
    SASRecEncoder,
    UserEncoderSpec,
    build_user_encoder,
)
from recfit.training.next_item_loss import (
    full_softmax_loss,
    in_batch_softmax_loss,
    log_frequency,
    sample_negatives,
    sampled_softmax_loss,
)

DIM = 16


@pytest.fixture(autouse=True)
def _one_thread():
    """Torch's intra-op threads fight the other processes of a shared CPU: one thread was ~50x faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def encoders() -> list[nn.Module]:
    torch.manual_seed(0)
    return [
        SASRecEncoder(DIM, max_history=12, num_layers=2, num_heads=2, inner_size=32).eval(),
        GRUEncoder(DIM, hidden_size=24).eval(),
        MeanEncoder().eval(),
    ]


ENCODER_NAMES = ["transformer", "gru", "mean"]


# --- user encoders ---------------------------------------------------------------------------------


@pytest.mark.parametrize("which", range(3), ids=ENCODER_NAMES)
def test_a_later_item_never_changes_an_earlier_position(which):
    encoder = encoders()[which]
    torch.manual_seed(1)
    items = torch.randn(3, 10, DIM)
    mask = torch.ones(3, 10, dtype=torch.bool)
    changed = items.clone()
    changed[:, 6] = torch.randn(3, DIM)
    with torch.no_grad():
        before, after = encoder(items, mask), encoder(changed, mask)
    torch.testing.assert_close(after[:, :6], before[:, :6], rtol=0, atol=1e-6)
    assert (after[:, 6:] - before[:, 6:]).abs().amax() > 1e-3  # the change does reach later positions


@pytest.mark.parametrize("which", range(3), ids=ENCODER_NAMES)
def test_padding_width_and_content_do_not_matter(which):
    encoder = encoders()[which]
    torch.manual_seed(2)
    lengths = torch.tensor([1, 4, 7])
    short_mask = torch.arange(7)[None, :] < lengths[:, None]
    items = torch.randn(3, 7, DIM) * short_mask[..., None]
    wide = torch.randn(3, 12, DIM) * 100  # padding filled with large garbage
    wide[:, :7] = torch.where(short_mask[..., None], items, wide[:, :7])
    wide_mask = torch.arange(12)[None, :] < lengths[:, None]
    with torch.no_grad():
        short, padded = encoder(items, short_mask), encoder(wide, wide_mask)
        torch.testing.assert_close(padded[:, :7][short_mask], short[short_mask], rtol=0, atol=1e-5)
        torch.testing.assert_close(encoder.encode(wide, wide_mask), encoder.encode(items, short_mask))
        assert torch.isfinite(padded).all()
    left_padded = torch.flip(short_mask, dims=[1])
    with pytest.raises(ValueError, match="right-padded"):
        encoder(items, left_padded)


def _recbole_style_sasrec(encoder: SASRecEncoder, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RecBole 1.2's SASRec forward written out with explicit matrix products and its -10000 mask."""
    length = items.shape[1]
    hidden = F.layer_norm(
        items + encoder.positions.weight[:length],
        (DIM,),
        encoder.input_norm.weight,
        encoder.input_norm.bias,
        encoder.input_norm.eps,
    )
    allowed = torch.tril(mask[:, None, None, :].expand(-1, 1, length, -1))
    additive = torch.where(allowed, 0.0, -10000.0)
    for layer in encoder.layers:
        attention, feed_forward = layer.attention, layer.feed_forward
        heads = attention.num_heads

        query, key, value = (
            p(hidden).view(-1, length, heads, DIM // heads).permute(0, 2, 1, 3)
            for p in (attention.query, attention.key, attention.value)
        )
        scores = query @ key.transpose(-1, -2) / math.sqrt(DIM // heads) + additive
        context = (scores.softmax(-1) @ value).permute(0, 2, 1, 3).reshape(-1, length, DIM)
        hidden = attention.norm(attention.dense(context) + hidden)
        inner = feed_forward.inner(hidden)
        inner = inner * 0.5 * (1.0 + torch.erf(inner / math.sqrt(2.0)))  # RecBole's gelu
        hidden = feed_forward.norm(feed_forward.outer(inner) + hidden)
    return hidden


def test_sasrec_matches_recboles_architecture():
    torch.manual_seed(3)
    encoder = SASRecEncoder(DIM, max_history=10, inner_size=32).eval()
    items = torch.randn(4, 10, DIM)
    mask = torch.arange(10)[None, :] < torch.tensor([10, 6, 3, 1])[:, None]
    with torch.no_grad():
        ours, theirs = encoder(items, mask), _recbole_style_sasrec(encoder, items, mask)
    torch.testing.assert_close(ours[mask], theirs[mask], rtol=1e-5, atol=1e-5)

    # RecBole's defaults (hidden 64, 2 layers, 2 heads, inner 256, max length 50): its SASRec has
    # 103,296 parameters besides the item embedding (position 50x64, input LayerNorm, and per layer
    # q/k/v/dense 4x(64x64+64) + LayerNorm, feed-forward 64x256+256+256x64+64 + LayerNorm)
    default = build_user_encoder(UserEncoderSpec(name="transformer"), 64)
    assert sum(p.numel() for p in default.parameters()) == 103_296
    assert default.layers[0].attention.attention_dropout == 0.5 and default.input_dropout.p == 0.5
    assert default.input_norm.eps == 1e-12
    weights = default.layers[0].feed_forward.inner.weight
    assert (
        abs(weights.std().item() - 0.02) < 0.002 and default.layers[0].attention.query.bias.abs().sum() == 0
    )


def test_build_user_encoder_names_and_bad_settings():
    assert build_user_encoder(UserEncoderSpec(name="id"), 8) is None
    assert isinstance(build_user_encoder(UserEncoderSpec(name="mean"), 8), MeanEncoder)
    gru = build_user_encoder(UserEncoderSpec(name="gru"), 8)
    assert isinstance(gru, GRUEncoder) and gru.gru.num_layers == 1 and gru.input_dropout.p == 0.3
    with pytest.raises(ConfigError, match="unknown user encoder 'lstm'"):
        build_user_encoder(UserEncoderSpec(name="lstm"), 8)
    with pytest.raises(ConfigError, match="num_heads=3 must divide"):
        build_user_encoder(UserEncoderSpec(name="transformer", num_heads=3), 8)
    too_long = SASRecEncoder(8, max_history=4).eval()
    with pytest.raises(ValueError, match="longer than max_history=4"):
        too_long(torch.zeros(1, 5, 8), torch.ones(1, 5, dtype=torch.bool))


@pytest.mark.parametrize("bad", [0, -1])
def test_max_history_must_be_positive(bad):
    train = UserSequences.from_lists([[0, 1, 2]], num_items=3)
    examples = prefix_examples(train, 5)
    for build in (
        lambda: build_user_encoder(UserEncoderSpec(name="transformer", max_history=bad), 8),
        lambda: build_user_encoder(UserEncoderSpec(name="mean", max_history=bad), 8),
        lambda: SASRecEncoder(8, max_history=bad),
        lambda: prefix_examples(train, bad),
        lambda: NextItemCollator(train, examples, bad),
    ):
        with pytest.raises(ConfigError, match=f"max_history must be a positive number of items, got {bad}"):
            build()


# --- sequences, leave-one-out, prefixes -------------------------------------------------------------


def test_prefix_examples_and_their_batches():
    train = UserSequences.from_lists([[5, 6, 7, 8, 9], [3, 4], [2]], num_items=10)
    examples = prefix_examples(train, max_history=3)
    assert len(examples) == 4 + 1 + 0  # n - 1 per user
    rows = [
        (int(u), train[u][:e].tolist(), int(t)) for u, e, t in zip(*examples.__dict__.values(), strict=True)
    ]
    assert rows == [
        (0, [5], 6),
        (0, [5, 6], 7),
        (0, [5, 6, 7], 8),
        (0, [5, 6, 7, 8], 9),
        (1, [3], 4),
    ]
    batch = NextItemCollator(train, examples, max_history=3)(list(range(len(examples))))
    assert batch["items"].tolist() == [
        [5, PAD, PAD],
        [5, 6, PAD],
        [5, 6, 7],
        [6, 7, 8],  # truncated to the 3 most recent items
        [3, PAD, PAD],
    ]
    assert batch["mask"].tolist() == (batch["items"] != PAD).tolist()
    assert batch["target"].tolist() == [6, 7, 8, 9, 4]
    assert batch["next_items"].tolist() == [
        [6, PAD, PAD],
        [6, 7, PAD],
        [6, 7, 8],
        [7, 8, 9],
        [4, PAD, PAD],
    ]
    assert batch["user"].tolist() == [0, 0, 0, 0, 1]
    # a batch is padded only to its own longest history
    assert NextItemCollator(train, examples, 3)([0, 4])["items"].shape == (2, 1)


def test_one_window_per_user_with_every_position_equals_every_prefix():
    """SASRec's every-position objective on one window == RecBole's prefix examples (causal encoder)."""
    torch.manual_seed(7)
    train = UserSequences.from_lists([[1, 2, 3, 4, 5, 6], [7, 8], [9], [2, 4, 6, 8]], num_items=10)
    item_vectors = torch.randn(10, DIM)
    encoder = SASRecEncoder(DIM, max_history=8, inner_size=32).eval()
    windows = window_examples(train)
    assert windows.users.tolist() == [0, 1, 3] and windows.targets.tolist() == [6, 8, 8]
    window = NextItemCollator(train, windows, 8)(list(range(len(windows))))
    prefixes = prefix_examples(train, 8)
    prefix = NextItemCollator(train, prefixes, 8)(list(range(len(prefixes))))
    assert int((window["next_items"] != PAD).sum()) == len(prefixes)
    with torch.no_grad():
        states = encoder(item_vectors[window["items"].clamp(min=0)], window["mask"])
        users = encoder.encode(item_vectors[prefix["items"].clamp(min=0)], prefix["mask"])
    torch.testing.assert_close(
        full_softmax_loss(states, item_vectors, window["next_items"]),
        full_softmax_loss(users, item_vectors, prefix["target"]),
    )


def test_leave_one_out_targets_and_histories():
    sequences = UserSequences.from_lists([[1, 2, 3, 4], [5, 6, 7], []], num_items=8)
    split = leave_one_out(sequences)
    assert split.targets(TEST).tolist() == [4, 7, -1]
    assert split.targets(VAL).tolist() == [3, 6, -1]
    assert split.train.to_lists() == [[1, 2], [5], []]
    assert split.history(TEST).to_lists() == [[1, 2, 3], [5, 6], []]
    assert split.users().tolist() == [0, 1]
    test = evaluation_examples(split, TEST, max_history=2)
    batch = NextItemCollator(split.history(TEST), test, max_history=2)(list(range(len(test))))
    assert batch["items"].tolist() == [[2, 3], [5, 6]] and batch["target"].tolist() == [4, 7]


def test_users_with_fewer_than_three_interactions_are_refused():
    sequences = UserSequences.from_lists(
        [[1, 2, 3], [4, 5], [1]], num_items=6, user_ids=np.array(["ann", "bob", "cy"])
    )
    with pytest.raises(DataError) as error:
        leave_one_out(sequences)
    message = str(error.value)
    assert "\n" not in message
    assert message == (
        "leave_one_out needs at least 3 interactions per user: 2 users have fewer (e.g. user bob with 2); "
        "drop them first (dataset.filter.k_core_users=3)"
    )


@pytest.fixture(scope="module")
def games_sequences(amazon_games_dir) -> UserSequences:
    return read_item_list_sequences(
        amazon_games_dir / "Games-6k.test.inter", amazon_games_dir / "Games-6k.item"
    )


def test_games_leave_one_out_reproduces_the_files_targets_for_every_user(amazon_games_dir, games_sequences):
    sequences = games_sequences
    assert (sequences.num_users, sequences.num_items, len(sequences.items)) == (50_546, 16_859, 440_264)
    split = leave_one_out(sequences)
    code = pd.Index(sequences.item_ids)
    for split_name, file in ((TEST, "Games-6k.test.inter"), (VAL, "Games-6k.valid.inter")):
        rows, _ = read_atomic_file(amazon_games_dir / file)
        assert rows["user_id"].tolist() == sequences.user_ids.tolist()
        assert (split.targets(split_name) == code.get_indexer(rows["item_id"])).all()
        history = split.history(split_name)
        tokens = rows["item_id_list"].str.split()
        assert (history.lengths == tokens.str.len()).all()
        assert (history.items == code.get_indexer(tokens.explode())).all()
    # the same sequences through recfit's existing Games reader (timestamps = positions)
    same = sequences_from_recdata(read_amazon_games(str(amazon_games_dir)))
    assert (same.offsets == sequences.offsets).all() and (same.items == sequences.items).all()
    examples = prefix_examples(split.train, 50)
    assert len(examples) == 440_264 - 3 * 50_546  # every train item but each user's first is a target


def test_item_list_files_with_bad_rows_are_refused(tmp_path):
    items = tmp_path / "x.item"
    items.write_text("item_id:token\ttitle:token_seq\na\tA\nb\tB\n")
    good = tmp_path / "good.inter"
    good.write_text("user_id:token\titem_id_list:token_seq\titem_id:token\nu1\ta b\ta\nu2\t\tb\n")
    assert read_item_list_sequences(good, items).to_lists() == [[0, 1, 0], [1]]
    cases = {
        "user_id:token\titem_id:token\nu1\ta\n": "needs a field 'item_id_list:token_seq'",
        "user_id:token\titem_id_list:token_seq\titem_id:token\nu1\ta\tb\nu1\tb\ta\n": (
            "names 1 users on more than one row"
        ),
        "user_id:token\titem_id_list:token_seq\titem_id:token\nu1\ta z\tb\n": "1 items in .* missing from",
        "user_id:token\titem_id_list:token_seq\titem_id:token\nu1\ta\t\n": "1 rows have an empty item_id",
    }
    for number, (text, error) in enumerate(cases.items()):
        file = tmp_path / f"bad{number}.inter"
        file.write_text(text)
        with pytest.raises(DataError, match=error):
            read_item_list_sequences(file, items)


@pytest.mark.parametrize("max_history", [50, 3])
def test_a_history_given_as_raw_ids_batches_like_the_users_own(games_sequences, max_history):
    """The inductive path (`recommend --history`): same items, same tensors, same user vector."""
    split = leave_one_out(games_sequences)
    examples = evaluation_examples(split, TEST, max_history)
    rows = [0, 17, 4242, int(np.argmax(split.history(TEST).lengths))]  # the last: the longest history
    own = NextItemCollator(split.history(TEST), examples, max_history)(rows)
    raw = [games_sequences.item_ids[split.history(TEST)[examples.users[row]]].tolist() for row in rows]
    codes = [
        history_codes(ids, games_sequences.item_ids, games_sequences.num_items, max_history) for ids in raw
    ]
    given = history_batch(codes, games_sequences.num_items, max_history)
    assert torch.equal(given["items"], own["items"]) and torch.equal(given["mask"], own["mask"])
    assert given["items"].shape[1] == min(max_history, 49)  # Games' longest test history: 49 items
    torch.manual_seed(8)
    item_vectors = torch.randn(games_sequences.num_items, DIM)
    encoder = SASRecEncoder(DIM, max_history=max_history, inner_size=32).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            encoder.encode(item_vectors[given["items"].clamp(min=0)], given["mask"]),
            encoder.encode(item_vectors[own["items"].clamp(min=0)], own["mask"]),
            rtol=0,
            atol=0,
        )


def test_bad_histories_are_refused_in_one_line():
    item_ids = np.array(["a", "b", "c"])
    assert history_codes(["c", " a"], item_ids, 3, max_history=5).tolist() == [2, 0]
    assert history_codes(["a", "b", "c"], item_ids, 3, max_history=2).tolist() == [1, 2]  # the latest
    assert history_codes(["2", "0"], None, 3, max_history=5).tolist() == [2, 0]  # no raw ids: codes
    for ids, error in (
        ([], "the history is empty: give at least one item id"),
        (
            ["a", "zz", "b", ""],
            "unknown item 'zz' in the history (2 of 4 ids unknown; the data set has 3 items)",
        ),
        (["a", "b", "a"], "item 'a' appears more than once in the history"),
    ):
        with pytest.raises(DataError) as raised:
            history_codes(ids, item_ids, 3, max_history=5)
        assert str(raised.value) == error


def test_movielens_histories_follow_time_then_file_order(ml100k_dir):
    sequences = sequences_from_recdata(read_movielens_100k(str(ml100k_dir)))
    raw = pd.read_csv(ml100k_dir / "u.data", sep="\t", names=["user", "item", "rating", "time"])
    raw["row"] = np.arange(len(raw))
    expected = {
        user: group.sort_values(["time", "row"])["item"].tolist() for user, group in raw.groupby("user")
    }
    for code, user in enumerate(sequences.user_ids):
        assert sequences.item_ids[sequences[code]].tolist() == expected[user]
    # ties are common, so the tie-break decides real positions: ordering ties by item id would differ
    by_item = {
        user: group.sort_values(["time", "item"])["item"].tolist() for user, group in raw.groupby("user")
    }
    assert sum(by_item[user] != expected[user] for user in expected) > 100
    split = leave_one_out(sequences)
    last = raw.sort_values(["user", "time", "row"]).groupby("user").tail(1).set_index("user")["item"]
    assert sequences.item_ids[split.targets(TEST)].tolist() == last.loc[sequences.user_ids].tolist()


def test_interactions_csv_with_and_without_times(tmp_path):
    file = tmp_path / "events.csv"
    file.write_text("user_id,item_id,timestamp\nu1,a,30\nu2,b,5\nu1,b,10\nu1,c,10\nu2,a,1\n")
    sequences = read_interactions_csv(file)
    assert sequences.user_ids.tolist() == ["u1", "u2"] and sequences.item_ids.tolist() == ["a", "b", "c"]
    assert sequences.to_lists() == [[1, 2, 0], [0, 1]]  # by time; u1's tie at 10 keeps file order (b, c)
    untimed = read_interactions_csv(file, time_column=None)
    assert untimed.to_lists() == [[0, 1, 2], [1, 0]]  # file order
    with pytest.raises(DataError, match="has no column when"):
        read_interactions_csv(file, item_column="when")
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,timestamp\nu1,a,yesterday\n")
    with pytest.raises(DataError, match="1 rows have no numeric 'timestamp'"):
        read_interactions_csv(bad)


# --- next-item losses ------------------------------------------------------------------------------


def _scores_setup(num_items: int = 40, rows: int = 64):
    generator = torch.Generator().manual_seed(4)
    queries = torch.randn(rows, 8, generator=generator)
    items = torch.randn(num_items, 8, generator=generator)
    targets = torch.randint(num_items, (rows,), generator=generator)
    return queries, items, targets


def test_sampled_softmax_over_every_item_once_is_the_full_softmax():
    queries, items, targets = _scores_setup()
    uniform = torch.full((len(items),), -math.log(len(items)))
    every_item = torch.arange(len(items))
    full = full_softmax_loss(queries, items, targets, temperature=0.5)
    sampled = sampled_softmax_loss(queries, items, targets, every_item, uniform, temperature=0.5)
    torch.testing.assert_close(sampled, full)
    # padding targets are ignored: per-position [B, L] targets pass through unchanged
    padded = torch.cat([targets, torch.full((5,), PAD)])
    torch.testing.assert_close(
        full_softmax_loss(torch.cat([queries, torch.randn(5, 8)]), items, padded),
        full_softmax_loss(queries, items, targets),
    )


def test_logq_correction_makes_popularity_sampled_softmax_approach_the_full_softmax():
    queries, items, targets = _scores_setup()
    # popular items score higher (as in real data), so over-drawing them without correction inflates
    # the softmax denominator
    popularity = torch.arange(1, len(items) + 1, dtype=torch.float64) ** 2
    items[:, 0] += torch.linspace(-2, 2, len(items))
    queries[:, 0] = queries[:, 0].abs() + 1
    log_q = log_frequency(popularity)
    negatives = sample_negatives(log_q, 200_000, torch.Generator().manual_seed(5))
    full = full_softmax_loss(queries, items, targets).item()
    corrected = sampled_softmax_loss(queries, items, targets, negatives, log_q).item()
    uniform = torch.full_like(log_q, -math.log(len(items)))
    uncorrected = sampled_softmax_loss(queries, items, targets, negatives, uniform).item()
    assert abs(corrected - full) < 0.01
    assert uncorrected - full > 0.1  # drawing by popularity without the correction is biased


def test_in_batch_softmax_with_logq_approaches_the_full_softmax():
    generator = torch.Generator().manual_seed(6)
    num_items = 30
    items = torch.randn(num_items, 8, generator=generator)
    popularity = torch.linspace(1, 20, num_items, dtype=torch.float64)
    targets = sample_negatives(log_frequency(popularity), 3000, generator)  # targets follow q
    queries = torch.randn(len(targets), 8, generator=generator)
    log_q = log_frequency(torch.bincount(targets, minlength=num_items))
    full = full_softmax_loss(queries, items, targets).item()
    in_batch = in_batch_softmax_loss(queries, items[targets], targets, log_q).item()
    uncorrected = in_batch_softmax_loss(
        queries, items[targets], targets, torch.full_like(log_q, -math.log(30))
    )
    assert abs(in_batch - full) < 0.02
    assert abs(uncorrected.item() - full) > 0.05


# --- end to end: an ID SASRec from these parts learns a toy next-item task -----------------------------


class _IdSASRec(nn.Module):
    """Item ID embeddings (the item tower) + a SASRec user encoder over those same vectors."""

    def __init__(self, num_items: int, dim: int, max_history: int) -> None:
        super().__init__()
        self.items = nn.Embedding(num_items, dim)
        nn.init.normal_(self.items.weight, std=0.02)  # RecBole's initializer_range
        self.encoder = SASRecEncoder(
            dim, max_history=max_history, inner_size=4 * dim, dropout=0.2, attention_dropout=0.2
        )

    def users(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        vectors = self.items(batch["items"].clamp(min=0))
        return self.encoder.encode(vectors, batch["mask"])


def _toy_sequences(num_users: int = 240, num_items: int = 50, seed: int = 0) -> UserSequences:
    """Each user walks the item circle with their own stride (1, 2 or 3) from a random start."""
    rng = np.random.default_rng(seed)
    lists = []
    for _ in range(num_users):
        start, stride, length = rng.integers(num_items), rng.integers(1, 4), rng.integers(8, 16)
        lists.append([int((start + stride * t) % num_items) for t in range(length)])
    return UserSequences.from_lists(lists, num_items)


def _ndcg_at_10(split, user_vectors_of, max_history: int) -> float:
    examples = evaluation_examples(split, TEST, max_history)
    batch = NextItemCollator(split.history(TEST), examples, max_history)(list(range(len(examples))))
    with torch.no_grad():
        user_vectors, item_vectors = user_vectors_of(batch)
    no_exclusion = torch.full((len(examples), 1), PAD)  # RecBole's sequential protocol masks nothing
    top = top_k_items(user_vectors, item_vectors, no_exclusion, k=10)
    return ranking_metrics(top, batch["target"][:, None], [10])["ndcg@10"].mean().item()


def test_an_id_sasrec_built_from_these_parts_learns_next_items():
    torch.manual_seed(0)
    max_history = 20
    split = leave_one_out(_toy_sequences())
    examples = prefix_examples(split.train, max_history)
    collate = NextItemCollator(split.train, examples, max_history)
    loader = torch.utils.data.DataLoader(
        examples, batch_size=128, shuffle=True, collate_fn=collate, generator=torch.Generator().manual_seed(0)
    )
    model = _IdSASRec(split.sequences.num_items, dim=32, max_history=max_history)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    epoch_losses = []
    for _ in range(6):
        model.train()
        losses = []
        for batch in loader:
            loss = full_softmax_loss(model.users(batch), model.items.weight, batch["target"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        epoch_losses.append(float(np.mean(losses)))
    assert epoch_losses[-1] < 0.6 * epoch_losses[0], epoch_losses

    model.eval()
    sasrec = _ndcg_at_10(split, lambda batch: (model.users(batch), model.items.weight), max_history)
    counts = torch.from_numpy(split.train.item_counts()).float()
    popularity = _ndcg_at_10(
        split, lambda batch: (torch.ones(len(batch["target"]), 1), counts[:, None]), max_history
    )
    assert sasrec > popularity + 0.3, (sasrec, popularity)


# ---- wired into recfit: task=next_item and model.user_encoder in real runs ---------------------------
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from helpers.cli import assert_one_line_error, run_cli  # noqa: E402
from helpers.files import REPO, tree_digest  # noqa: E402
from helpers.runs import ONE_EPOCH, SMALL_DATA, train  # noqa: E402

# 40 synthetic users x 8 interactions: 5 prefix examples each in training, batches of 64 (4 steps)
NEXT_ITEM = [
    "backbone=none", "model=mf", "task=next_item", "split=leave_one_out", "loss=cross_entropy",
    *SMALL_DATA, *ONE_EPOCH, "model.embedding_dim=16", "model.user_encoder.max_history=5",
    "loss.temperature=1.0", "optimizer.head_lr=0.01", "seed=3",
]  # fmt: skip
REPORTED_NAMES = ("recall", "ndcg", "mrr", "hit")
REPORTED = {f"{stage}/{name}@{k}" for stage in ("val", "test") for name in REPORTED_NAMES for k in (10, 20)}
TEXT = ["backbone=tiny_bert", "model=two_tower", "backbone.cache_vectors=false"]
ENCODER_RUNS = {
    "id": [],
    "mean": ["model.user_encoder.name=mean"],
    "gru": ["model.user_encoder.name=gru"],
    "transformer": ["model.user_encoder.name=transformer"],
    "transformer_sampled": ["model.user_encoder.name=transformer", "loss.negatives=sampled",
                            "loss.num_negatives=7"],
    "gru_in_batch": ["model.user_encoder.name=gru", "loss.negatives=in_batch"],
    "popularity": ["model=popularity"],  # the baseline under the same protocol: nothing to train
    # text item towers (+ item IDs): frozen (item vectors computed once), top layer fine-tuned over the
    # prefix cache, and fully fine-tuned with the batch's items encoded at each step
    "text_frozen_transformer": [*TEXT, "backbone.freeze=all", "model.user_encoder.name=transformer"],
    "text_top_layer_sampled_mean": [*TEXT, "backbone.freeze=1", "loss.negatives=sampled",
                                    "loss.num_negatives=7", "model.user_encoder.name=mean"],
    "text_fine_tuned_in_batch_gru": [*TEXT, "backbone.freeze=none", "loss.negatives=in_batch",
                                     "model.user_encoder.name=gru"],
}  # fmt: skip


@pytest.fixture(scope="module")
def next_item_runs(tmp_path_factory) -> dict[str, dict]:
    """One tiny next-item run per user encoder (and per kind of negatives): their metrics.json."""
    return {
        name: train(tmp_path_factory.mktemp(name), *NEXT_ITEM, *overrides)
        for name, overrides in ENCODER_RUNS.items()
    }


@pytest.mark.parametrize("name", sorted(ENCODER_RUNS))
def test_a_next_item_run_trains_each_user_encoder_and_writes_its_metrics(next_item_runs, name):
    record = next_item_runs[name]
    assert record["task"] == "next_item" and set(record["metrics"]) == REPORTED
    assert all(0 <= value <= 1 for value in record["metrics"].values())
    for stage in ("val", "test"):  # one target per user: recall@K is hit@K
        assert record["metrics"][f"{stage}/recall@10"] == record["metrics"][f"{stage}/hit@10"]
    assert "history items not masked" in record["protocol"]
    assert "RecBole LS valid_and_test, TO" in record["protocol"]
    reads_history = name not in ("id", "popularity")  # only history encoders read the latest items
    assert ("users as their latest" in record["protocol"]) == reads_history, record["protocol"]
    table = pd.read_parquet(Path(record["run_dir"]) / "per_user.parquet")
    assert len(table) == table["user"].nunique() == 40  # every user once, by their test target
    assert table["ndcg@10"].mean() == pytest.approx(record["metrics"]["test/ndcg@10"])
    parameters = record["parameters"]["trainable"]
    item_table = 60 * 16
    if name == "popularity":
        assert parameters == 0
    elif name == "id":
        assert parameters == item_table + 40 * 16  # item and user ID vectors
    elif name == "mean":
        assert parameters == item_table  # no user vectors: users are their histories
    else:
        assert parameters > item_table


def test_the_same_seed_gives_the_same_next_item_metrics(next_item_runs, tmp_path):
    again = train(tmp_path, *NEXT_ITEM, *ENCODER_RUNS["transformer_sampled"])
    assert again["metrics"] == next_item_runs["transformer_sampled"]["metrics"]


# SASRec's every-position objective: one window per user, the loss on every real position
WINDOW_RUNS = {
    "transformer": ["model.user_encoder.name=transformer"],
    "gru_sampled": ["model.user_encoder.name=gru", "loss.negatives=sampled", "loss.num_negatives=7"],
    "mean_in_batch": ["model.user_encoder.name=mean", "loss.negatives=in_batch"],
}
WINDOW = [*NEXT_ITEM, "task.next_item_examples=window"]


@pytest.fixture(scope="module")
def window_runs(tmp_path_factory) -> dict[str, dict]:
    return {
        name: train(tmp_path_factory.mktemp(name), *WINDOW, *extra) for name, extra in WINDOW_RUNS.items()
    }


@pytest.mark.parametrize("name", sorted(WINDOW_RUNS))
def test_window_rows_train_each_history_encoder_and_write_its_metrics(window_runs, next_item_runs, name):
    record = window_runs[name]
    assert record["task"] == "next_item" and set(record["metrics"]) == REPORTED
    assert all(0 <= value <= 1 for value in record["metrics"].values())
    # one row per user (40), not one per prefix (40 users x 5 prefixes): evaluation is unchanged
    assert record["train_throughput"]["samples"] == 40
    assert next_item_runs["transformer"]["train_throughput"]["samples"] == 200
    assert record["protocol"] == next_item_runs["transformer"]["protocol"]
    table = pd.read_parquet(Path(record["run_dir"]) / "per_user.parquet")
    assert len(table) == table["user"].nunique() == 40


def test_the_same_seed_gives_the_same_window_metrics(window_runs, tmp_path):
    again = train(tmp_path, *WINDOW, *WINDOW_RUNS["gru_sampled"])
    assert again["metrics"] == window_runs["gru_sampled"]["metrics"]


@pytest.mark.parametrize("negatives", ["full", "in_batch"])
def test_the_window_loss_is_every_positions_softmax_computed_by_hand(tmp_path, negatives):
    """A hand-built batch of two windows: the run's loss is the mean over the 5 real positions of each
    prefix's own softmax cross-entropy, its user vector encoded from that prefix alone."""
    from recfit.config import compose
    from recfit.training.run import build

    overrides = [*WINDOW, "model.user_encoder.name=transformer", f"loss.negatives={negatives}"]
    module = build(compose([*overrides, f"paths.data_dir={tmp_path}"])).module.eval()  # no dropout
    items = torch.tensor([[3, 7, 9], [5, 2, PAD]])
    mask = items != PAD
    next_items = torch.tensor([[7, 9, 11], [2, 4, PAD]])
    batch = {"user": torch.tensor([0, 1]), "items": items, "mask": mask, "target": next_items}
    if (
        negatives == "in_batch"
    ):  # the rows' last targets are the negatives; only the batch's items are encoded
        batch |= {"negatives": torch.tensor([11, 4]), "unique_items": torch.tensor([2, 3, 4, 5, 7, 9, 11])}
    task = module.tasks[0]
    with torch.no_grad():
        loss = task.loss_value(task.training_output(module, batch), batch["target"], module)
        table = module.recommender.catalogue_vectors([(torch.arange(60), {})])
        log_q = module.item_log_frequency
        terms = []
        for row, length in ((0, 3), (1, 2)):
            for t in range(length):
                user = module.recommender.encode_histories(
                    items[row : row + 1, : t + 1], mask[row : row + 1, : t + 1], table
                )[0]
                target = int(next_items[row, t])
                if negatives == "full":
                    logits = table @ user
                    terms.append(float(torch.logsumexp(logits, 0) - logits[target]))
                    continue
                positive = float(user @ table[target])
                others = [
                    float(user @ table[j]) - float(log_q[j]) - math.log(2) for j in (11, 4) if j != target
                ]
                terms.append(-positive + math.log(math.exp(positive) + sum(math.exp(v) for v in others)))
    assert module.temperature == 1.0 and len(terms) == 5
    assert float(loss) == pytest.approx(sum(terms) / 5, rel=1e-5)


@pytest.mark.parametrize(
    ("overrides", "temperature"),
    [
        (["task=next_item", "loss=cross_entropy"], 1.0),  # RecBole's CE: plain dot products
        (["task=next_item", "loss.negatives=sampled"], 1.0),
        (["task=next_item", "loss.temperature=0.05"], 0.05),  # an explicit value wins
        (["task=ranking", "loss=cross_entropy"], 0.05),  # ranking's cosine scores keep theirs
        (["experiment=ml100k_sasrec"], 1.0),
    ],
)
def test_next_items_default_temperature_is_recboles_and_rankings_stays(overrides, temperature):
    from recfit.config import compose

    assert compose(overrides).loss.temperature == temperature


def test_an_id_sasrec_learns_the_synthetic_next_items_better_than_chance(tmp_path):
    record = train(
        tmp_path, *NEXT_ITEM, "model.user_encoder.name=transformer", "trainer.max_epochs=8",
        "model.user_encoder.dropout=0.1", "model.user_encoder.attention_dropout=0.1",
    )  # fmt: skip
    chance = 10 / 60  # hit@10 of a random ranking of 60 items
    assert record["metrics"]["test/hit@10"] > 1.5 * chance


def test_next_item_settings_are_checked_before_torch_loads():
    from helpers.imports import modules_loaded_by

    bad = [*NEXT_ITEM, "model.user_encoder.name=transformer", "model.user_encoder.num_heads=3"]
    code = (
        "from recfit.config import compose, validate\n"
        f"validate(compose({NEXT_ITEM + ['model.user_encoder.name=transformer']!r}))\n"
        f"try:\n    validate(compose({bad!r}))\nexcept Exception as error:\n    print(error)\n"
    )
    assert modules_loaded_by(code) == []


def test_sampled_softmax_without_the_correction_scores_negatives_as_they_are():
    generator = torch.Generator().manual_seed(0)
    queries, table = torch.randn(5, DIM, generator=generator), torch.randn(30, DIM, generator=generator)
    targets, negatives = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([7, 8, 9, 1])
    logits = torch.cat([(queries * table[targets]).sum(-1, keepdim=True), queries @ table[negatives].T], 1)
    logits[1, 4] = float("-inf")  # row 1's own target drawn as a negative: an accidental hit, masked
    expected = F.cross_entropy(logits, torch.zeros(5, dtype=torch.long))
    assert torch.allclose(sampled_softmax_loss(queries, table, targets, negatives, None), expected)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["backbone=none", "model=mf", "model.user_encoder.name=gru"],
            "model.user_encoder.name=gru encodes users from their item histories, which task 'ranking' "
            "does not have (use task=next_item",
        ),
        (
            [*NEXT_ITEM, "model.user_encoder.max_history=0"],
            "model.user_encoder.max_history must be a positive",
        ),
        (
            [*NEXT_ITEM, "model.user_encoder.max_history=-2"],
            "model.user_encoder.max_history must be a positive",
        ),
        (
            [*NEXT_ITEM, "model.user_encoder.name=transformer", "model.user_encoder.num_heads=3"],
            "model.user_encoder.num_heads=3 must divide model.embedding_dim=16",
        ),
        ([*NEXT_ITEM, "split=ratio"], "task next_item needs split=leave_one_out"),
        (
            [*NEXT_ITEM, "model=popularity", "model.user_encoder.name=mean"],
            "model 'popularity' has no user tower for model.user_encoder.name=mean",
        ),
        (
            [*NEXT_ITEM, "task.next_item_examples=window"],
            "task.next_item_examples=window trains every position of a history, but "
            "model.user_encoder.name=id has one vector per user",
        ),
        (
            [*NEXT_ITEM, "loss.negatives=sampled", "loss.num_negatives=0"],
            "loss.num_negatives must be at least 1",
        ),
        (
            [*NEXT_ITEM, "backbone=tiny_bert", "backbone.freeze=none", "model=two_tower"],
            "task next_item with loss.negatives=full scores every item at every step",
        ),
        # a DataError found once the data is read: a run folder is made, and marked failed
        (
            [*NEXT_ITEM, "dataset.reader.interactions_per_user=2"],
            "leave_one_out needs at least 3 interactions per user",
        ),
    ],
)
def test_bad_next_item_settings_give_one_line_and_leave_earlier_runs_alone(
    next_item_runs, capsys, overrides, message
):
    earlier = Path(next_item_runs["id"]["run_dir"])  # a finished run in the same output folder
    before = tree_digest(earlier)
    result = run_cli(capsys, "train", *overrides, f"paths.output_dir={earlier.parents[2]}")
    assert_one_line_error(result, message)
    assert tree_digest(earlier) == before


def test_the_ml100k_sasrec_experiment_runs_recboles_model_on_every_rating(tmp_path, ml100k_dir):
    """One short step of the experiment file on the real data: RecBole's SASRec size and protocol."""
    record = train(
        tmp_path, "experiment=ml100k_sasrec", f"dataset.reader.path={ml100k_dir}", *ONE_EPOCH,
        "trainer.limit_train_batches=1", "dataset.batch_size=128",
    )  # fmt: skip
    assert record["data"] == "movielens_100k: 100,000 interactions, 943 users, 1,682 items"
    assert record["protocol"].startswith("no filtering; leave_one_out per user in time order")
    assert "full ranking over all 1,682 items, history items not masked" in record["protocol"]
    # RecBole's SASRec: 103,296 weights besides the item table (ours has no padding row)
    assert record["parameters"]["trainable"] == 103_296 + 1_682 * 64
    assert set(record["metrics"]) == {f"{s}/{m}@10" for s in ("val", "test") for m in REPORTED_NAMES}


def test_a_fine_tuned_item_tower_gets_gradients_through_the_history_side(tmp_path):
    """The user vector is made of the scored item vectors: its gradient alone reaches the backbone."""
    from recfit.config import compose
    from recfit.training.run import build

    overrides = [*NEXT_ITEM, *ENCODER_RUNS["text_fine_tuned_in_batch_gru"], f"paths.data_dir={tmp_path}"]
    module = build(compose(overrides)).module
    batch = next(iter(module.item_source.train_dataloader()))
    assert "item_inputs" in batch  # a fine-tuned backbone reads the batch's items' text
    users, table, _ = module.tasks[0].training_output(module, batch)
    users.sum().backward()
    backbone = module.recommender.backbone
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone.parameters())


# A child run that sends itself SIGTERM after step 6, mid-way through its second epoch (4 steps each)
SIGTERM_AFTER_STEP_6 = """
import os, signal, sys
from recfit.cli import main
from recfit.training.module import RecModule

def stop(module, outputs, batch, index):
    if module.global_step == 6:
        os.kill(os.getpid(), signal.SIGTERM)

RecModule.on_train_batch_end = stop
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_an_interrupted_next_item_run_resumes_to_the_metrics_of_the_run_left_alone(tmp_path):
    """SIGTERM mid-epoch, then resume=auto: the shuffled prefixes, SASRec's dropout and the sampled
    negatives all replay exactly. The stop runs in a child process: a run whose process is still alive
    (this one) is rightly never resumed."""
    from test_resume import assert_same_end, final  # its helpers: one run folder's end, compared

    from recfit.cli import main

    run = [
        *NEXT_ITEM,
        *ENCODER_RUNS["transformer_sampled"],
        "trainer.max_epochs=2",
        "checkpoint_every_n_steps=2",
    ]
    train(tmp_path / "alone", *run)
    stopped = tmp_path / "stopped"
    child = subprocess.run(
        [sys.executable, "-c", SIGTERM_AFTER_STEP_6, "train", *run, f"paths.output_dir={stopped}"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert child.returncode == 128 + signal.SIGTERM, child.stderr[-2000:]
    record, _ = final(stopped)
    assert record["status"] == "interrupted"
    main(["train", *run, f"paths.output_dir={stopped}", "resume=auto"])
    assert_same_end(final(tmp_path / "alone"), stopped)


@pytest.mark.slow
def test_two_processes_evaluate_a_next_item_run_exactly_like_one(next_item_runs, tmp_path):
    from helpers.runs import evaluate

    overrides = [*NEXT_ITEM, *ENCODER_RUNS["transformer"]]
    checkpoint = next_item_runs["transformer"]["best_checkpoint"]
    one, one_table = evaluate(overrides, checkpoint, tmp_path / "one", devices=1)
    two, two_table = evaluate(overrides, checkpoint, tmp_path / "two", devices=2, strategy="ddp_spawn")
    assert set(one) == REPORTED and two == one
    assert len(one_table) == one_table["user"].nunique() == 40
    pd.testing.assert_frame_equal(two_table, one_table)
