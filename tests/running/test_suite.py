import pytest

from hwprof.errors import BadInput
from hwprof.running.suite import load_suite, parse_suite


def test_presets_load_and_put_references_first():
    for name in ("quick", "standard", "full"):
        for dev in ("cpu", "cuda"):
            suite = load_suite(name, dev)
            ids = [s.config_id for s in suite.specs]
            assert len(ids) == len(set(ids))
            for i, spec in enumerate(suite.specs):
                from hwprof.kernels.spec import reference_of
                assert ids.index(reference_of(spec).config_id) <= i


def test_quick_covers_the_precisions_at_two_sizes():
    suite = load_suite("quick", "cpu")
    mm = {(s.shape, s.precision) for s in suite.specs if s.kernel == "matmul"}
    for p in ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8_e4m3", "int8"):
        assert ((256, 256, 256), p) in mm and ((512, 512, 512), p) in mm


def test_expansion_is_the_cross_product_plus_missing_references():
    suite = parse_suite("""
[[matmul]]
shapes = [[64, 64, 64], [2, 32, 32, 32]]
precisions = ["bf16", "int8"]
sparsity = ["dense", "unstructured:0.5"]
""")
    ids = [s.config_id for s in suite.specs]
    assert len(ids) == 2 * 2 * 2 + 2          # + the fp32 dense reference per shape
    assert ids[0] == "matmul/64x64x64/fp32/dense/fwd"


def test_device_specific_groups():
    text = """
[[matmul]]
shapes = [[64, 64, 64]]
[[matmul]]
device = "cuda"
shapes = [[4096, 4096, 4096]]
"""
    assert len(parse_suite(text, device_type="cpu").specs) == 1
    assert len(parse_suite(text, device_type="cuda").specs) == 2


@pytest.mark.parametrize("text,needle", [
    ("name = ", "not valid TOML"),
    ("[[matmul]]\nshapes = [[8, 8, 8]]\nprecisions = ['fp9']", "unknown precision 'fp9'"),
    ("[[matmul]]\nshapes = [[8, 0, 8]]", "non-positive"),
    ("[[matmul]]\nshapes = [[8, 8]]", "must be [M, N, K]"),
    ("[[matmul]]\nshapes = [[8, 8, 99999999]]", "above"),
    ("[[matmul]]\nshapes = [[8, 8, 8]]\nsparsity = ['unstructured:1.5']", "outside (0, 1]"),
    ("[[matmul]]\nshapes = [['a', 8, 8]]", "list of integers"),
    ("[[matmul]]\nprecisions = ['fp32']", "missing 'shapes'"),
    ("[[conv]]\nshapes = [[1]]", "unknown key"),
    ("[[matmul]]\nshapes = [[8, 8, 8]]\nfoo = 1", "unknown key(s) foo"),
    ("budget_s = -1\n[[matmul]]\nshapes = [[8, 8, 8]]", "budget_s"),
    ("budget_s = nan\n[[matmul]]\nshapes = [[8, 8, 8]]", "budget_s"),
    ("name = 'x'", "no [[matmul]], [[attention]] or [[model]]"),
    ("[[attention]]\nshapes = [[1, 2, 8, 8, 4]]\nmasks = ['sliding']", "unknown mask"),
    ("[[attention]]\nshapes = [[1, 2, 8, 8, 4]]\nprecisions = ['int8']", "not available for attention"),
    ("[[matmul]]\nshapes = [[8, 8, 8]]\ndevice = 'tpu'", "must be \"cpu\" or \"cuda\""),
    ("matmul = 3", "array of tables"),
])
def test_bad_suites_are_rejected_with_a_clear_message(text, needle):
    with pytest.raises(BadInput) as e:
        parse_suite(text, "s.toml")
    assert needle in str(e.value) and "s.toml" in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        load_suite(str(tmp_path / "absent"))
    with pytest.raises(BadInput, match="no such file"):
        load_suite(str(tmp_path / "absent.toml"))
