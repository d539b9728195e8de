"""The gazetteer against facts checked by hand in the Ministry of Civil Affairs code list."""
from __future__ import annotations

import time

import pytest

from eastwest.inference.gazetteer import Gazetteer, Region, resolve, short_forms, surface_forms, to_simplified


@pytest.fixture(scope="module")
def gaz() -> Gazetteer:
    return Gazetteer.load()


@pytest.mark.parametrize(
    "surface, full_name, level",
    [
        # full names and conventional short forms
        ("会宁县", "甘肃省白银市会宁县", "county"),
        ("会宁", "甘肃省白银市会宁县", "county"),
        ("甘肃", "甘肃省", "province"),
        ("天津", "天津市", "province"),
        ("宁夏", "宁夏回族自治区", "province"),
        ("广西", "广西壮族自治区", "province"),
        ("内蒙古", "内蒙古自治区", "province"),
        ("新疆", "新疆维吾尔自治区", "province"),
        ("恩施", "湖北省恩施土家族苗族自治州", "prefecture"),
        ("恩施州", "湖北省恩施土家族苗族自治州", "prefecture"),
        ("延边", "吉林省延边朝鲜族自治州", "prefecture"),
        ("西双版纳", "云南省西双版纳傣族自治州", "prefecture"),
        ("渭源", "甘肃省定西市渭源县", "county"),
        ("城阳区", "山东省青岛市城阳区", "county"),
        ("神农架", "湖北省神农架林区", "county"),
        # chains: the deepest level known wins, an unknown village tail is ignored
        ("甘肃省定西市渭源县", "甘肃省定西市渭源县", "county"),
        ("山东省青岛市城阳区", "山东省青岛市城阳区", "county"),
        ("甘肃省会宁县", "甘肃省白银市会宁县", "county"),
        ("天津和平区", "天津市和平区", "county"),
        ("麻家集镇路西村", "甘肃省定西市渭源县麻家集镇", "town"),
        ("务川自治县大坪街道敬贤社区", "贵州省遵义市务川仡佬族苗族自治县大坪街道", "town"),
        # traditional characters
        ("會寧縣", "甘肃省白银市会宁县", "county"),
        ("隴南", "甘肃省陇南市", "prefecture"),
        ("甘肅", "甘肃省", "province"),
        ("青島", "山东省青岛市", "prefecture"),
        ("來鳳縣", "湖北省恩施土家族苗族自治州来凤县", "county"),
        # a simplified name that OpenCC would spoil (乾 → 干) is looked up as written first
        ("乾县", "陕西省咸阳市乾县", "county"),
    ],
)
def test_resolve(gaz, surface, full_name, level):
    region = gaz.resolve(surface)
    assert region is not None, surface
    assert (region.full_name, region.level) == (full_name, level)


@pytest.mark.parametrize("surface", ["津甘", "城渭", "闽宁", "两县一区", "东西部", "津", "甘", "河西走", "",
                                     "会宁乡村", "定西农村"])  # 乡村, 农村: the countryside, not a village
def test_not_regions(gaz, surface):
    assert gaz.resolve(surface) is None


def test_region_fields(gaz):
    region = gaz.resolve("会宁")
    assert region == Region("会宁县", "620422", "county", "甘肃省", "甘肃省白银市会宁县", "白银市", "620400")
    assert region.to_dict() == {"name": "会宁县", "code": "620422", "level": "county",
                                "province": "甘肃省", "full_name": "甘肃省白银市会宁县"}
    heping = gaz.resolve("天津市和平区")  # a municipality district has no prefecture
    assert (heping.code, heping.prefecture, heping.province) == ("120101", "", "天津市")


@pytest.mark.parametrize(
    "surface, context, full_name",
    [
        ("和平区", ["天津"], "天津市和平区"),
        ("和平区", ["沈阳"], "辽宁省沈阳市和平区"),
        ("和平", ["辽宁省", "会宁"], "辽宁省沈阳市和平区"),
        ("普陀区", ["舟山市"], "浙江省舟山市普陀区"),
        ("普陀区", ["上海"], "上海市普陀区"),
        ("西湖區", ["南昌"], "江西省南昌市西湖区"),
        ("西湖区", ["杭州", "恩施"], "浙江省杭州市西湖区"),
        # a shared prefecture outweighs a shared province
        ("和平区", ["辽宁", "天津", "沈阳市"], "辽宁省沈阳市和平区"),
        # the same ambiguous surface in the context is no evidence for itself
        ("和平区", ["和平区", "沈阳"], "辽宁省沈阳市和平区"),
    ],
)
def test_context_disambiguates(gaz, surface, context, full_name):
    assert gaz.resolve(surface, context).full_name == full_name


def test_context_accepts_regions(gaz):
    shenyang = gaz.resolve("沈阳市")
    assert gaz.resolve("和平区", [shenyang]).code == "210102"


def test_default_prefers_higher_level(gaz):
    assert gaz.resolve("白银").level == "prefecture"  # 白银市, not its 白银区
    assert gaz.resolve("吉林").level == "province"  # 吉林省, not 吉林市
    assert gaz.resolve("海南").full_name == "海南省"
    # …unless the context says otherwise: 海南藏族自治州 in Qinghai
    assert gaz.resolve("海南", ["青海省", "西宁"]).full_name == "青海省海南藏族自治州"


def test_candidates_lists_all_same_named(gaz):
    assert {r.code for r in gaz.candidates("和平区")} == {"120101", "210102"}


def test_short_forms():
    assert short_forms("会宁县", "county") == ["会宁"]
    assert short_forms("宁夏回族自治区", "province") == ["宁夏", "宁夏自治区", "宁夏区"]
    assert short_forms("恩施土家族苗族自治州", "prefecture")[:2] == ["恩施", "恩施自治州"]
    assert short_forms("内蒙古自治区", "province") == []  # 内蒙古 is an explicit alias instead
    assert short_forms("沛县", "county") == []  # never a single character
    assert short_forms("鄂温克族自治旗", "county") == []  # only an ethnic name would be left
    assert short_forms("麻家集镇", "town") == []


def test_surface_forms(gaz):
    forms = set(surface_forms())
    assert ("会宁", "county") in forms and ("会宁县", "county") in forms
    assert ("宁夏", "province") in forms and ("恩施", "prefecture") in forms
    assert ("麻家集镇", "town") in forms
    assert all(len(s) >= 2 for s, _ in forms)
    assert not {("合作", "county"), ("和平", "county"), ("河西", "county"), ("振兴", "town")} & forms
    assert {level for _, level in forms} == {"province", "prefecture", "county", "town"}


def test_load_is_cached():
    Gazetteer.load()
    start = time.perf_counter()
    for _ in range(100):
        assert resolve("会宁县").code == "620422"
    assert time.perf_counter() - start < 0.5
    assert Gazetteer.load() is Gazetteer.load()


def test_to_simplified_keeps_offsets():
    text = "河西區與甘肅『兩縣一區』開展東西部扶貧協作"
    assert len(to_simplified(text)) == len(text)
    assert to_simplified("會寧縣") == "会宁县"


def test_context_from_text(gaz):
    names = {r.full_name for r in gaz.context_from_text("天津市和平区与甘肃省会宁县开展协作")}
    assert names == {"天津市", "甘肃省"}
