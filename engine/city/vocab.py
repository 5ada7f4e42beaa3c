"""The city's vocabularies: age bands, industry sectors, enterprise sizes, site and sensor kinds.

Feeds, the indicator catalog and the simulator use these exact ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "AGE_BANDS",
    "AGE_COLUMNS",
    "CAMERA_SITE_KINDS",
    "SECTORS",
    "SECTOR_CODES",
    "SENSOR_KINDS",
    "SITE_KINDS",
    "SIZES",
    "Sector",
    "SensorKind",
    "SiteKind",
]

#: The 16 age bands of the Prem et al. contact matrices (5-year bands, 75+ open).
AGE_BANDS: list[str] = [f"{5 * i}-{5 * i + 4}" for i in range(15)] + ["75+"]
#: File column for each age band (``age_0_4`` ... ``age_75_plus``).
AGE_COLUMNS: list[str] = [f"age_{5 * i}_{5 * i + 4}" for i in range(15)] + ["age_75_plus"]


class Sector(NamedTuple):
    """A section of China's industrial classification GB/T 4754-2017 (``code, zh, en``)."""

    code: str
    zh: str
    en: str


#: The 20 sections of GB/T 4754-2017, as ``(code, name_zh, name_en)`` named tuples.
SECTORS: list[Sector] = [
    Sector("A", "农、林、牧、渔业", "agriculture"),
    Sector("B", "采矿业", "mining"),
    Sector("C", "制造业", "manufacturing"),
    Sector("D", "电力、热力、燃气及水生产和供应业", "utilities"),
    Sector("E", "建筑业", "construction"),
    Sector("F", "批发和零售业", "wholesale and retail"),
    Sector("G", "交通运输、仓储和邮政业", "transport and logistics"),
    Sector("H", "住宿和餐饮业", "accommodation and catering"),
    Sector("I", "信息传输、软件和信息技术服务业", "information technology"),
    Sector("J", "金融业", "finance"),
    Sector("K", "房地产业", "real estate"),
    Sector("L", "租赁和商务服务业", "leasing and business services"),
    Sector("M", "科学研究和技术服务业", "research and technical services"),
    Sector("N", "水利、环境和公共设施管理业", "water, environment and public facilities"),
    Sector("O", "居民服务、修理和其他服务业", "residential services"),
    Sector("P", "教育", "education"),
    Sector("Q", "卫生和社会工作", "health and social work"),
    Sector("R", "文化、体育和娱乐业", "culture, sports and entertainment"),
    Sector("S", "公共管理、社会保障和社会组织", "public administration"),
    Sector("T", "国际组织", "international organisations"),
]
SECTOR_CODES: list[str] = [s.code for s in SECTORS]

#: Enterprise size classes with their employee ranges (inclusive; ``None``: open).
SIZES: dict[str, tuple[int, int | None]] = {
    "micro": (1, 9),
    "small": (10, 99),
    "medium": (100, 999),
    "large": (1000, None),
}


@dataclass(frozen=True)
class SiteKind:
    """A kind of site (point of interest) the city tracks.

    ``per_1m1`` is the approximate count per 1.1 million residents; ``capacity`` the median
    number of people a site holds or serves (for compound gates, 0 here: each gate serves its
    share of the neighbourhood's residents); ``placement`` how sites spread over
    neighbourhoods (``population``, ``centre``, ``mixed``, ``area`` or ``elderly``).
    """

    id: str
    zh: str
    en: str
    per_1m1: float
    capacity: int
    placement: str


#: Site kinds by id (order is the canonical order of the sites table).
SITE_KINDS: dict[str, SiteKind] = {
    k.id: k
    for k in [
        SiteKind("pharmacy", "药店", "pharmacy", 50, 30, "population"),
        SiteKind("compound_gate", "小区门岗", "compound gate", 800, 0, "population"),
        SiteKind("mall", "商场", "shopping mall", 15, 8000, "centre"),
        SiteKind("wet_market", "农贸市场", "wet market", 30, 1200, "population"),
        SiteKind("supermarket", "超市", "supermarket", 60, 400, "population"),
        SiteKind("restaurant", "餐饮门店", "restaurant", 300, 120, "mixed"),
        SiteKind("street_shop", "沿街商铺", "street shop", 1500, 20, "population"),
        SiteKind("office_building", "写字楼", "office building", 120, 2000, "centre"),
        SiteKind("construction_site", "建设工地", "construction site", 40, 300, "area"),
        SiteKind("metro_station", "地铁站", "metro station", 30, 5000, "centre"),
        SiteKind("school", "学校", "school", 90, 1500, "population"),
        SiteKind("hospital", "医院", "hospital", 15, 1500, "population"),
        SiteKind("elderly_care", "养老机构", "elderly care home", 25, 150, "elderly"),
        SiteKind("hotel", "宾馆酒店", "hotel", 40, 300, "centre"),
    ]
}


@dataclass(frozen=True)
class SensorKind:
    """A kind of sensor; ``per_1m1`` is the count per 1.1 million residents (``None`` for
    cameras, which come one per site of :data:`CAMERA_SITE_KINDS`)."""

    id: str
    zh: str
    en: str
    per_1m1: float | None
    placement: str


#: Sensor kinds by id (order is the canonical order of the sensors table).
SENSOR_KINDS: dict[str, SensorKind] = {
    k.id: k
    for k in [
        SensorKind("road_segment", "道路路段", "road segment", 600, "area"),
        SensorKind("water_meter", "供水计量点", "water metering point", 300, "population"),
        SensorKind("power_meter", "配电变压器", "distribution transformer", 600, "population"),
        SensorKind("gas_meter", "燃气调压站", "gas regulator station", 200, "population"),
        SensorKind("drainage_gauge", "排水液位计", "drainage level gauge", 100, "area"),
        SensorKind("lift_monitor", "电梯监测", "lift monitor", 1500, "mixed"),
        SensorKind("air_monitor", "空气监测站", "air quality station", 30, "area"),
        SensorKind("noise_monitor", "噪声监测点", "noise monitor", 60, "mixed"),
        SensorKind("camera", "视频监控点", "video camera", None, "site"),
    ]
}
#: Sites that get one video camera each (``sensors.site`` names the site).
CAMERA_SITE_KINDS: tuple[str, ...] = ("compound_gate", "pharmacy", "wet_market", "mall", "metro_station")
