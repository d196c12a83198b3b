"""Freed bytes split by rule: shared layers once, parts that add up to the total exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gcd.core.accounting import StorageAccount
from gcd.core.attribution import apportion, freed_by_rule, still_reclaimable
from gcd.core.kind import Key
from gcd.core.kinds.images import image_of
from gcd.core.plan import Decision
from gcd.core.records import Image, Snapshot
from gcd.core.rules import RuleId
from tests.unit.builders import NOW, days, image

UNKEPT, DANGLING, PRESSURE = RuleId.UNKEPT, RuleId.DANGLING, RuleId.PRESSURE


def decide(img: Image, rule: RuleId) -> Decision:
    return Decision(img, rule, "", days(1))


A = image("app:1", layers=("base", "a"))
B = image("app:2", layers=("base", "b"))
K = image("keep:1", layers=("base", "k"))
D = image(seed="dangling", layers=("d",))
SIZES = {"base": 1000, "a": 10, "b": 20, "k": 40, "d": 7}


class TestFreedByRule:
    def test_a_layer_shared_by_removed_images_counts_once_for_the_first_in_plan_order(self) -> None:
        plan = [decide(B, UNKEPT), decide(A, PRESSURE), decide(D, DANGLING)]
        removed = {A.key: PRESSURE, B.key: UNKEPT, D.key: DANGLING}
        assert freed_by_rule(plan, removed, SIZES) == {
            UNKEPT: 1000 + 20,
            PRESSURE: 10,
            DANGLING: 7,
        }

    def test_a_layer_a_remaining_image_uses_is_not_freed(self) -> None:
        plan = [decide(A, UNKEPT), decide(B, UNKEPT), decide(K, RuleId.REFERENCE)]
        assert freed_by_rule(plan, {A.key: UNKEPT, B.key: UNKEPT}, SIZES) == {UNKEPT: 30}

    def test_an_image_that_was_not_removed_keeps_its_shared_layer(self) -> None:
        plan = [decide(A, UNKEPT), decide(B, DANGLING)]
        assert freed_by_rule(plan, {A.key: UNKEPT}, SIZES) == {UNKEPT: 10}

    def test_a_removed_image_that_freed_nothing_still_names_its_rule(self) -> None:
        plan = [decide(A, UNKEPT), decide(K, RuleId.REFERENCE), decide(B, DANGLING)]
        split = freed_by_rule(plan, {B.key: DANGLING}, {"base": 5, "b": 0})
        assert split == {DANGLING: 0}


class TestStillReclaimable:
    def test_what_the_plan_frees_before_the_run_counts_deferred_deletions_too(self) -> None:
        plan = [decide(A, UNKEPT), decide(B, RuleId.RUN_LIMIT), decide(D, RuleId.NEWEST)]
        assert still_reclaimable(plan, (), SIZES) == 1000 + 10 + 20

    def test_after_the_run_only_what_was_not_removed(self) -> None:
        plan = [decide(A, UNKEPT), decide(B, UNKEPT), decide(K, RuleId.REFERENCE)]
        assert still_reclaimable(plan, {A.key}, SIZES) == 20
        assert still_reclaimable(plan, {A.key, B.key}, SIZES) == 0


class TestApportion:
    def test_parts_that_already_add_up_are_kept(self) -> None:
        assert apportion({UNKEPT: 3, DANGLING: 4}, 7, UNKEPT) == {UNKEPT: 3, DANGLING: 4}

    def test_scaling_keeps_whole_bytes_and_the_exact_total(self) -> None:
        assert apportion({UNKEPT: 1, DANGLING: 1, PRESSURE: 1}, 10, UNKEPT) == {
            UNKEPT: 4,
            DANGLING: 3,
            PRESSURE: 3,
        }

    def test_all_zero_parts_give_the_total_to_the_fallback(self) -> None:
        assert apportion({DANGLING: 0}, 9, UNKEPT) == {DANGLING: 0, UNKEPT: 9}
        assert apportion({}, 0, UNKEPT) == {}

    @given(
        st.dictionaries(st.sampled_from(list(RuleId)), st.integers(0, 10**12), max_size=5),
        st.integers(0, 10**13),
    )
    def test_the_parts_always_sum_to_the_total(self, parts: dict[RuleId, int], total: int) -> None:
        shares = apportion(parts, total, UNKEPT)
        assert sum(shares.values()) == total
        assert all(share >= 0 for share in shares.values())


LAYERS = [f"l{i}" for i in range(8)]


@st.composite
def plans(draw: st.DrawFn) -> tuple[list[Decision], dict[Key, RuleId], dict[str, int]]:
    count = draw(st.integers(1, 8))
    decisions = []
    for n in range(count):
        layers = tuple(draw(st.lists(st.sampled_from(LAYERS), min_size=1, max_size=4)))
        rule = draw(st.sampled_from([UNKEPT, DANGLING, PRESSURE, RuleId.NEWEST]))
        img = image(f"repo:{n}", layers=layers, age=days(2))
        decisions.append(decide(img, rule))
    removed = {d.key: d.rule for d in decisions if d.rule.deletes and draw(st.booleans())}
    sizes = {layer: draw(st.integers(0, 10**9)) for layer in LAYERS}
    return decisions, removed, sizes


@given(plans())
def test_the_split_sums_to_the_layer_account_of_the_removed_images(
    case: tuple[list[Decision], dict[Key, RuleId], dict[str, int]],
) -> None:
    decisions, removed, sizes = case
    account = StorageAccount.of(Snapshot(NOW, tuple(image_of(d) for d in decisions), (), sizes))
    expected = account.freed_by(image_of(d) for d in decisions if d.key in removed)
    split = freed_by_rule(decisions, removed, sizes)
    assert sum(split.values()) == expected
    assert set(split) == set(removed.values())
