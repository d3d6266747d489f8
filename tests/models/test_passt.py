"""PaSST: parity with the reference (golden data), patchout, input-length rules, presets and weight transfer."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import load_reference, shared_path
from tympan.errors import ConfigError
from tympan.models import create, get_preset, list_models, load_checkpoint
from tympan.models.passt import PaSST, checkpoint_filter_fn

TOL = {"atol": 1e-4, "rtol": 1e-4}
TINY = {"img_size": (128, 200), "stride": (10, 10), "embed_dim": 32, "depth": 1, "num_heads": 2, "num_classes": 5}


@pytest.fixture(scope="module")
def golden() -> dict:
    return load_reference("passt", "passt_small_s10.pt")


@pytest.fixture(scope="module")
def small(golden: dict) -> PaSST:
    model = create("passt", **golden["config"])
    model.load_state_dict(golden["state_dict"], strict=True)
    return model.eval()


def tiny(generator: torch.Generator | None = None, seed: int = 0, **changes) -> PaSST:
    torch.manual_seed(seed)  # the init draws from the global generator, as nn.Module init does
    model = PaSST(**{**TINY, "distilled": True, **changes})
    model.generator = generator
    return model


@pytest.mark.parametrize("suffix", ["", "_short", "_long"])
def test_matches_reference_logits_and_embedding(golden: dict, small: PaSST, suffix: str) -> None:
    mel = golden[f"mel_input{suffix}"]
    with torch.no_grad():
        embedding = small.forward_features(mel)
        logits = small(mel)
    torch.testing.assert_close(logits, golden[f"logits{suffix}"], **TOL)
    torch.testing.assert_close(embedding, golden[f"embedding{suffix}"], **TOL)
    torch.testing.assert_close(small.forward_head(embedding), logits)


def test_token_outputs_and_counts(golden: dict, small: PaSST) -> None:
    with torch.no_grad():
        tokens = small.forward_tokens(golden["mel_input"])
        short = small.forward_tokens(golden["mel_input_short"])
    torch.testing.assert_close(tokens[:, 0], golden["cls_token_out"], **TOL)
    torch.testing.assert_close(tokens[:, 1], golden["dist_token_out"], **TOL)
    assert tokens.shape[1] == golden["num_tokens_eval_998"]
    assert short.shape[1] == golden["num_tokens_eval_400"]
    assert list(small.patch_embed.grid_size) == golden["grid_size"]
    assert small.num_features == 192 and small.num_classes == 527


def test_structured_patchout_in_training_only(golden: dict, small: PaSST, generator: torch.Generator) -> None:
    small.generator = generator
    try:
        small.train()
        with torch.no_grad():
            tokens = small.forward_tokens(golden["mel_input"])
    finally:
        small.eval()
        small.generator = None
    assert tokens.shape[1] == golden["num_tokens_train_998"]  # 2 + (12 - 4) * (99 - 40)


def test_patchout_keeps_positions_and_same_columns_for_the_batch(generator: torch.Generator) -> None:
    model = tiny(generator, s_patchout_t=5, s_patchout_f=3).train()
    # value = 100 * column + row, so the kept patches tell where they came from
    grid = (100 * torch.arange(19.0).view(1, 1, 1, 19) + torch.arange(12.0).view(1, 1, 12, 1)).expand(2, 3, 12, 19)
    kept = model._keep(model._keep(grid, 3, 5), 2, 3)
    assert kept.shape == (2, 3, 9, 14)
    columns, rows = kept[0, 0, 0] // 100, kept[0, 0, :, 0] % 100
    assert bool((columns.diff() > 0).all()) and bool((rows.diff() > 0).all())
    torch.testing.assert_close(kept, (100 * columns.view(1, 1, 1, 14) + rows.view(1, 1, 9, 1)).expand(2, 3, 9, 14))


def test_unstructured_patchout_drops_tokens(generator: torch.Generator) -> None:
    model = tiny(generator, u_patchout=50).train()
    mel = torch.randn(2, 1, 128, 200, generator=generator)
    assert model.forward_tokens(mel).shape[1] == 2 + 12 * 19 - 50


def test_patchout_larger_than_grid_is_a_config_error(generator: torch.Generator) -> None:
    with pytest.raises(ConfigError, match="s_patchout_t"):
        tiny(s_patchout_t=20)  # the encoding grid is 12 x 20 (200 // 10)
    with pytest.raises(ConfigError, match="u_patchout"):
        tiny(u_patchout=12 * 20)
    model = tiny(generator, s_patchout_t=10).train()  # fine for 19 columns, too many for a short clip
    with pytest.raises(ConfigError, match="ESC-50"):
        model(torch.randn(1, 1, 128, 100, generator=generator))  # 9 time patches


def test_wrong_number_of_mel_bins_is_a_config_error(generator: torch.Generator) -> None:
    with pytest.raises(ConfigError, match="64 mel bins"):
        tiny().eval()(torch.randn(1, 1, 64, 200, generator=generator))


def test_training_draws_a_random_offset_of_time_encodings(generator: torch.Generator) -> None:
    model = tiny(torch.Generator().manual_seed(7)).train()
    mel = torch.randn(2, 1, 128, 60, generator=generator)  # 5 time patches of 20 encodings
    trained = model(mel)
    offset = int(torch.randint(20 - 5 + 1, (1,), generator=torch.Generator().manual_seed(7)))
    assert offset > 0
    shifted = tiny().eval()
    shifted.load_state_dict(model.state_dict())
    with torch.no_grad():
        shifted.time_new_pos_embed[..., : 20 - offset] = model.time_new_pos_embed[..., offset:]
        torch.testing.assert_close(trained, shifted(mel))  # eval uses the first encodings


def test_long_input_is_cut_and_warned_once(caplog: pytest.LogCaptureFixture, generator: torch.Generator) -> None:
    model = tiny().eval()
    mel = torch.randn(1, 1, 128, 260, generator=generator)
    with caplog.at_level(logging.WARNING, logger="tympan.models.passt"), torch.no_grad():
        long, again, cut = model(mel), model(mel), model(mel[..., : 16 + 19 * 10])  # 25 vs 20 patches
    assert sum("cut" in r.getMessage() for r in caplog.records) == 1
    torch.testing.assert_close(long, cut)
    torch.testing.assert_close(again, cut)
    patchout = tiny(generator, s_patchout_t=15, s_patchout_f=4).train()  # training on long inputs works too
    assert patchout.forward_tokens(mel).shape[1] == 2 + (12 - 4) * (20 - 15)


def test_backward_with_patchout_and_reset_classifier(generator: torch.Generator) -> None:
    model = tiny(generator, s_patchout_t=4, s_patchout_f=2, drop_path_rate=0.1).train()
    norm = model.head[0].weight.detach().clone()
    model.reset_classifier(3)
    assert isinstance(model.head[0], torch.nn.LayerNorm) and torch.equal(model.head[0].weight, norm)
    assert model.head[1].out_features == 3 and model.head_dist.out_features == 3 and model.num_classes == 3
    assert model.head[1].training and model.head_dist.weight.dtype == torch.float32
    evaluated = tiny().double().eval()
    evaluated.reset_classifier(4)
    assert not evaluated.head[1].training and evaluated.head[1].weight.dtype == torch.float64
    loss = model(torch.randn(2, 1, 128, 200, generator=generator)).sum()
    loss.backward()
    assert model.patch_embed.proj.weight.grad is not None and model.time_new_pos_embed.grad.abs().sum() > 0


def test_eval_path_exports() -> None:
    model = tiny().eval()
    exported = torch.export.export(model, (torch.zeros(1, 1, 128, 200),))
    mel = torch.randn(1, 1, 128, 200, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(exported.module()(mel), model(mel))


def _manifest(name: str) -> dict:
    return json.loads(shared_path("reference", "passt", name).read_text())


def test_full_model_keys_and_shapes_match_the_official_checkpoint() -> None:
    manifest = _manifest("passt_s_swa_p16_128_ap476_keys.json")
    with torch.device("meta"):
        model = create("passt_s_swa_p16_128_ap476")
    state = model.state_dict()
    assert list(state) == manifest["keys_in_order"]
    assert {k: list(v.shape) for k, v in state.items()} == manifest["shapes"]
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    assert not list(model.buffers())


VARIANTS = {  # manifest entry -> our preset name
    "passt_s_swa_p16_128_ap476": "passt_s_swa_p16_128_ap476",
    "passt_s_kd_p16_128_ap486": "passt_s_kd_p16_128_ap486",
    "passt_l_kd_p16_128_ap47": "passt_l_kd_p16_128_ap47",
    "passt_s_swa_p16_128_ap4761": "passt_s_swa_p16_128_ap4761",
    "passt_s_p16_128_ap472": "passt_s_p16_128_ap472",
    "passt_s_p16_s16_128_ap468": "passt_s_p16_s16_128_ap468",
    "passt_s_swa_p16_s16_128_ap473": "passt_s_swa_p16_s16_128_ap473",
    "passt_s_swa_p16_s14_128_ap471": "passt_s_swa_p16_s14_128_ap471",
    "passt_s_p16_s14_128_ap469": "passt_s_p16_s14_128_ap469",
    "passt_s_swa_p16_s12_128_ap473": "passt_s_swa_p16_s12_128_ap473",
    "passt_s_p16_s12_128_ap470": "passt_s_p16_s12_128_ap470",
    "passt_s_f128_20sec_p16_s10_ap474 (hear21passt: passt_20sec)": "passt_s_f128_20sec_p16_s10_ap474",
    "passt_s_f128_30sec_p16_s10_ap473 (hear21passt: passt_30sec)": "passt_s_f128_30sec_p16_s10_ap473",
    "hear21passt stfthop100 (passt_s_swa_f128_stfthop100_p16_s10_ap473)": "passt_s_swa_f128_stfthop100_p16_s10_ap473",
    "hear21passt stfthop160 (passt_s_swa_f128_stfthop160_p16_s10_ap473)": "passt_s_swa_f128_stfthop160_p16_s10_ap473",
    "hear21passt openmic (openmic_passt_s_f128_10sec_p16_s10_ap85)": "openmic_passt_s_f128_10sec_p16_s10_ap85",
    "hear21passt fsd50k (fsd50k_passt_s_f128_p16_s10_ap655)": "fsd50k_passt_s_f128_p16_s10_ap655",
    "hear21passt fsd50k-n (fsd50k_passt_s_n_f128_p16_s16_ap642)": "fsd50k_passt_s_n_f128_p16_s16_ap642",
    "hear21passt passt_u600_f128_p16_s16_ap_460 (built with fstride=tstride=16)": "passt_u600_f128_p16_s16_ap_460",
    "hear21passt passt_b_f128_p16_s16_ap_459 (built with fstride=tstride=16)": "passt_b_f128_p16_s16_ap_459",
    "ESC-50 fine-tune (README: passt_s_swa_p16_128_ap476 with n_classes=50)": (
        "esc50_passt_s_n_f128_p16_s10_fold1_acc967"
    ),
}


# Presets the manifest does not list, all the network of passt_s_swa_p16_128_ap476: their head sizes.
SAME_NETWORK_AS_AP476 = {
    "openmic2008_passt_u_f128_p16_s10_ap85": 20,
    "openmic2008_passt_u_f128_p16_s10_ap85_swa": 20,
    "passt_deit_bd_p16_384": 527,
    **{f"passt_{recipe}_{run}": 10 for recipe in ("dirfms", "fms") for run in (1, 2, 3)},
}


def test_every_preset_is_a_published_variant() -> None:
    assert sorted([*VARIANTS.values(), *SAME_NETWORK_AS_AP476]) == list_models("*passt*", exclude="fpasst")


@pytest.mark.parametrize("name", sorted(SAME_NETWORK_AS_AP476))
def test_other_presets_are_the_ap476_network_with_their_head(name: str) -> None:
    classes = SAME_NETWORK_AS_AP476[name]
    base = _manifest("passt_s_swa_p16_128_ap476_keys.json")["shapes"]
    expected = {k: [classes, *v[1:]] if k.startswith(("head.1.", "head_dist.")) else v for k, v in base.items()}
    with torch.device("meta"):
        model = create(name)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == expected
    assert sum(p.numel() for p in model.parameters()) == get_preset(name).num_params


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_preset_builds_with_the_published_keys_and_shapes(variant: str) -> None:
    manifest = _manifest("passt_variants_shapes.json")[variant]
    base = _manifest("passt_s_swa_p16_128_ap476_keys.json")["shapes"]
    expected = {k: manifest["shapes_differing_from_ap476"].get(k, v) for k, v in base.items()}
    expected = {k: v for k, v in expected.items() if k not in manifest["keys_absent_vs_ap476"]}
    name = VARIANTS[variant]
    with torch.device("meta"):
        model = create(name)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == expected
    params = sum(p.numel() for p in model.parameters())
    assert params == manifest["num_parameters"] == get_preset(name).num_params
    assert len(model.blocks) == manifest["depth"] and model.num_classes == expected["head.1.bias"][0]
    assert model.preset.checkpoint_filename.endswith(".pt") and model.frontend_config.sample_rate == 32000


def test_presets_take_patchout_as_a_training_setting() -> None:
    with torch.device("meta"):
        model = create("passt_s_swa_p16_s16_128_ap473", s_patchout_t=20, s_patchout_f=1)
    assert (model.s_patchout_t, model.s_patchout_f, model.patch_embed.grid_size) == (20, 1, (8, 62))
    with pytest.raises(ConfigError, match="s_patchout_t"), torch.device("meta"):
        create("passt_s_swa_p16_s16_128_ap473", s_patchout_t=62)


def test_hop_presets_carry_their_frontend() -> None:
    for hop, frames in ((100, 3200), (160, 2000)):
        entry = get_preset(f"passt_s_swa_f128_stfthop{hop}_p16_s10_ap473")
        assert entry.frontend.hop_length == hop and entry.model_kwargs["img_size"] == (128, frames)
        assert entry.frontend.num_frames(320000) // 10 == frames // 10  # 10 s fill the time encodings


def _deit_state(embed_dim: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A DeiT-B-distilled-384-shaped state dict (24x24 grid, RGB patches, 1000-class heads), narrower."""
    donor = PaSST(img_size=(384, 384), stride=16, in_chans=3, embed_dim=embed_dim, depth=1, num_heads=2,
                  num_classes=1000, distilled=True).state_dict()
    state = {k: v for k, v in donor.items() if not k.startswith(("head.", "new_pos", "freq_new", "time_new"))}
    state["pos_embed"] = torch.randn(1, 2 + 24 * 24, embed_dim, generator=generator)
    state["head.weight"], state["head.bias"] = torch.randn(1000, embed_dim), torch.zeros(1000)
    return {"model": state}


def test_checkpoint_filter_converts_deit_imagenet_weights(generator: torch.Generator) -> None:
    deit = _deit_state(32, generator)
    model = tiny()
    head_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("head")}
    load_checkpoint(model, deit, filter_fn=checkpoint_filter_fn)
    source = deit["model"]
    grid = source["pos_embed"][0, 2:].reshape(1, 24, 24, 32).permute(0, 3, 1, 2)
    resized = F.interpolate(grid, size=(12, 20), mode="bicubic", align_corners=False)
    torch.testing.assert_close(model.new_pos_embed, source["pos_embed"][:, :2])
    torch.testing.assert_close(model.freq_new_pos_embed, resized.mean(dim=3, keepdim=True))
    torch.testing.assert_close(model.time_new_pos_embed, resized.mean(dim=2, keepdim=True))
    assert model.time_new_pos_embed.shape == (1, 32, 1, 20) and model.freq_new_pos_embed.shape == (1, 32, 12, 1)
    torch.testing.assert_close(model.patch_embed.proj.weight, source["patch_embed.proj.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(model.blocks[0].attn.qkv.weight, source["blocks.0.attn.qkv.weight"])
    for key, value in head_before.items():  # classifiers of another class count are not transferred
        torch.testing.assert_close(model.state_dict()[key], value)


def test_checkpoint_filter_reheads_and_reshapes_old_patch_weights() -> None:
    source = tiny(seed=1).state_dict()
    source["patch_embed.proj.weight"] = source["patch_embed.proj.weight"].reshape(32, -1)
    model = tiny(num_classes=7)
    head = model.head[1].weight.clone()
    load_checkpoint(model, source, filter_fn=checkpoint_filter_fn)
    torch.testing.assert_close(model.patch_embed.proj.weight, source["patch_embed.proj.weight"].reshape(32, 1, 16, 16))
    torch.testing.assert_close(model.head[0].weight, source["head.0.weight"])
    torch.testing.assert_close(model.head[1].weight, head)


def test_checkpoint_filter_reads_hear21passt_wrapper_state_dicts() -> None:
    manifest = _manifest("hear21passt_base_wrapper_keys.json")
    model_keys = _manifest("passt_s_swa_p16_128_ap476_keys.json")["keys_in_order"]
    assert manifest["keys_in_order"] == ["device_proxy"] + [f"net.{k}" for k in model_keys]
    source = tiny(seed=1).state_dict()
    wrapper = {"device_proxy": torch.zeros(1), **{f"net.{k}": v for k, v in source.items()}}
    model = tiny(num_classes=5)
    load_checkpoint(model, wrapper, filter_fn=checkpoint_filter_fn)
    torch.testing.assert_close(model.time_new_pos_embed, source["time_new_pos_embed"])
