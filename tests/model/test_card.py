"""ModelCard: JSON round trip and consistency checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from monitor.engine.pipeline import model_info_from_card
from monitor.model.card import ModelCard, Pooling
from tests.model.factory import make_card


def test_card_json_round_trip_is_lossless() -> None:
    """to_json then from_json gives an equal card."""
    card = make_card()
    again = ModelCard.from_json(card.to_json())
    assert again == card
    assert again.normalisation.mean == [80.0, 97.0]
    assert again.metrics.per_feature["spo2"].noise_floor_rmse == 0.9


def test_feature_index_is_the_column() -> None:
    """feature_index gives the tensor column of a feature, KeyError for others."""
    card = make_card()
    assert card.feature_index("spo2") == 1
    with pytest.raises(KeyError, match="resp_rate"):
        card.feature_index("resp_rate")


def test_unknown_feature_is_refused() -> None:
    """A feature that is not a known vital fails validation, naming it."""
    data = make_card().model_dump()
    data["features"] = ["heart_rate", "glucose"]
    with pytest.raises(ValidationError, match="glucose"):
        ModelCard.model_validate(data)


def test_statistics_length_must_match_features() -> None:
    """Normalisation with the wrong number of values fails validation."""
    data = make_card().model_dump()
    data["normalisation"]["std"] = [1.0]
    with pytest.raises(ValidationError, match=r"normalisation.std has 1 values for 2"):
        ModelCard.model_validate(data)


def test_unknown_card_field_is_refused() -> None:
    """Extra keys are refused, so a typo cannot pass silently."""
    data = make_card().model_dump()
    data["windw"] = 3
    with pytest.raises(ValidationError, match="windw"):
        ModelCard.model_validate(data)


def test_pooling_must_tile_the_window() -> None:
    """window - recent must be a positive multiple of block; a card that pools right loads."""
    data = make_card(window=5).model_dump(mode="json")
    data["pooling"] = {"recent": 3, "block": 2}
    assert ModelCard.model_validate(data).pooling == Pooling(recent=3, block=2)
    data["pooling"] = {"recent": 2, "block": 2}
    with pytest.raises(ValidationError, match=r"window - recent \(3\) must be a positive multiple"):
        ModelCard.model_validate(data)


def test_old_cards_without_centring_or_pooling_still_load() -> None:
    """Cards written before centring and pooling existed mean: no centring, no pooling."""
    data = make_card().model_dump(mode="json")
    del data["pooling"]
    del data["normalisation"]["centring"]
    card = ModelCard.model_validate(data)
    assert card.pooling is None
    assert card.normalisation.centring == "none"


def test_a_beat_waveform_without_ectopy_is_judged_by_timing_and_the_pipeline_knows_it() -> None:
    """A card written before `shape_distance` and `ectopy` (beat waveforms then were the
    regular ones) reads `timing`; the pipeline's model info names the `shape` and the
    `timing` ones (a `none` one is in neither)."""
    data = make_card().model_dump(mode="json")
    data["rhythm"] = {"heart_rate": {"beats": 30, "interval_s": 0.8, "regular_share": 0.97}}
    old = ModelCard.model_validate(data)
    assert old.rhythm["heart_rate"].ectopy == "timing"
    assert old.rhythm["heart_rate"].shape_distance is None
    data["rhythm"]["spo2"] = {
        "beats": 40, "interval_s": 0.7, "regular_share": 0.8, "shape_distance": 0.2,
        "ectopy": "shape",
    }  # fmt: skip
    card = ModelCard.model_validate(data)
    info = model_info_from_card(card)
    assert (info.rhythm, info.shaped, info.timed) == (
        ("heart_rate", "spo2"),
        ("spo2",),
        ("heart_rate",),
    )
    data["rhythm"]["spo2"]["ectopy"] = "none"
    info = model_info_from_card(ModelCard.model_validate(data))
    assert (info.rhythm, info.shaped, info.timed) == (("heart_rate", "spo2"), (), ("heart_rate",))
    data["rhythm"]["spo2"]["ectopy"] = "morphology"
    with pytest.raises(ValidationError, match="ectopy"):
        ModelCard.model_validate(data)
