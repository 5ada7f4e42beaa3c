"""Every validation error is reported with file, entry, field and reason, all at once."""

import shutil
import textwrap

import pytest

from engine.catalog import Catalog, CatalogError, bundled_path

GOOD = """
domain = "safety"

[[template]]
id = "fires"
dimension = "public_safety"
feed = "fire_alarms"
each = "categories"
only = ["kitchen_fire", "ebike_fire"]
subject = "t_{item}"
subject_zh = "{item_zh}"
subject_en = "{item_en}"
filter = { category = "{item}" }
statistics = "events_brief"
direction = "up_bad"
owner = "fire_rescue"
"""


def write(tmp_path, text, name="mine.toml"):
    (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def problems_of(tmp_path, text):
    return Catalog.check(write(tmp_path, text))


def test_a_users_folder_with_only_indicator_files_loads(tmp_path):
    cat = Catalog.load(write(tmp_path, GOOD))
    assert len(cat) == 8  # 2 categories x 4 variants
    assert cat.get("safety.public_safety.t_kitchen_fire.trend_24h_7d")["aggregation"] == "derived"


def _one(problems, field, fragment):
    hits = [p for p in problems if p.field == field and fragment in p.reason]
    assert hits, f"no {field!r} problem containing {fragment!r} in {[str(p) for p in problems]}"
    assert all(p.file == "mine.toml" for p in hits)
    return hits[0]


@pytest.mark.parametrize("old, new, field, fragment", [
    ('dimension = "public_safety"', 'dimension = "firefighting"', "dimension", "unknown dimension 'firefighting'"),
    ('feed = "fire_alarms"', 'feed = "smoke_signals"', "feed", "unknown feed 'smoke_signals'"),
    ('owner = "fire_rescue"', 'owner = "fire_department"', "owner", "unknown department 'fire_department'"),
    ('subject_zh = "{item_zh}"', 'subject_zh = ""', "subject_zh", "missing or empty"),
    ('statistics = "events_brief"', 'statistics = "weekly_stuff"', "statistics", "unknown statistic set 'weekly_stuff'"),
    ('each = "categories"', 'each = "colours"', "each", "unknown axis 'colours'"),
    ('only = ["kitchen_fire", "ebike_fire"]', 'only = ["kitchen_fire", "volcano"]', "only", "'volcano' is not an item"),
    ('filter = { category = "{item}" }', 'filter = { category = "{item}", metric = "x" }', "filter", "key 'metric' does not apply"),
    ('direction = "up_bad"', 'direction = "sideways"', "direction", "unknown direction 'sideways'"),
    ('subject = "t_{item}"', 'subject = "t_{colour}"', "-", "placeholder {colour}"),
])
def test_template_errors(tmp_path, old, new, field, fragment):
    assert old in GOOD
    problem = _one(problems_of(tmp_path, GOOD.replace(old, new)), field, fragment)
    assert problem.entry  # names the indicator or template


def indicator(**over):
    fields = dict(id="safety.public_safety.kitchen.count_2h", name_zh="厨房火灾", name_en="Kitchen fires", unit="起",
                  dimension="public_safety", feed="fire_alarms", filter='{ category = "kitchen_fire" }',
                  aggregation="count", window="2h", normalisation="none", direction="up_bad", rollup="sum",
                  seasonality="daily", owner="fire_rescue", weight="1.0")
    fields.update(over)
    body = "\n".join(f"{k} = {v}" if k in ("filter", "weight", "thresholds") else f"{k} = \"{v}\"" for k, v in fields.items())
    return f'domain = "safety"\n[[indicator]]\n{body}\n'


@pytest.mark.parametrize("over, field, fragment", [
    (dict(window="2 hours"), "window", "bad window '2 hours'"),
    (dict(aggregation="median"), "aggregation", "unknown aggregation 'median'"),
    (dict(aggregation="mean"), "aggregation", "'mean' does not apply to events feed"),
    (dict(normalisation="per_capita"), "normalisation", "unknown normalisation 'per_capita'"),
    (dict(rollup="average"), "rollup", "unknown rollup 'average'"),
    (dict(seasonality="monthly"), "seasonality", "unknown seasonality 'monthly'"),
    (dict(name_en=""), "name_en", "missing or empty"),
    (dict(unit=""), "unit", "missing or empty"),
    (dict(weight="-2"), "weight", "expected a positive number, got -2"),
    (dict(filter='{ category = "kitchen" }'), "filter", "category 'kitchen' is not declared"),
    (dict(id="safety.public_order.kitchen.count_2h"), "id", "must start with its domain and dimension"),
    (dict(id="Safety.kitchen"), "id", "is not domain.dimension.subject.statistic"),
    (dict(thresholds="{ warn = 5, alarm = 2 }"), "thresholds", "warn level (5) must be below the alarm level (2)"),
    (dict(thresholds="{ warn = 5, panic = 9 }"), "thresholds", "expected {warn = x, alarm = y}"),
    (dict(aggregation="derived", formula="1 +"), "formula", "expected a number"),
])
def test_indicator_errors(tmp_path, over, field, fragment):
    if over.get("aggregation") == "derived":
        over.setdefault("rollup", "formula")
        text = indicator(**{k: v for k, v in over.items() if k != "formula"}).replace(
            "[[indicator]]", f"[[indicator]]\nformula = \"{over['formula']}\"")
    else:
        text = indicator(**over)
    _one(problems_of(tmp_path, text), field, fragment)


SITE = """
domain = "construction"

[[template]]
id = "site_levels"
dimension = "sites_buildings"
feed = "site_monitors"
each = "metrics"
only = ["pm10", "noise"]
subject = "t_{item}"
subject_zh = "{item_zh}"
subject_en = "{item_en}"
filter = { metric = "{item}" }
statistics = "levels"
direction = "up_bad"
owner = "housing_construction"
thresholds = { mean_1h = { warn = 150, alarm = 250 } }
"""


def test_a_level_outside_the_metrics_declared_range_is_reported(tmp_path):
    # one template's PM10 levels (ug/m3) on a dB(A) metric whose declared range ends at 150
    problems = problems_of(tmp_path, SITE)
    hits = [p for p in problems if p.field == "thresholds"]
    assert {p.entry for p in hits} == {"construction.sites_buildings.t_noise.mean_1h"}
    assert any("warn level 150 is outside the range 0..150 (dB(A))" in p.reason for p in hits)
    assert any("alarm level 250" in p.reason for p in hits)
    assert problems_of(tmp_path, SITE.replace('["pm10", "noise"]', '["pm10"]')) == []


def test_duplicate_id_and_duplicate_definition(tmp_path):
    text = indicator() + indicator(name_en="Kitchen fires again").replace('domain = "safety"\n', "")
    problems = problems_of(tmp_path, text)
    _one(problems, "id", "duplicate id")
    text = indicator() + indicator(id="safety.public_safety.kitchen2.count_2h").replace('domain = "safety"\n', "")
    _one(problems_of(tmp_path, text), "-", "same definition as 'safety.public_safety.kitchen.count_2h'")


def test_formula_cycle_and_unknown_reference(tmp_path):
    text = indicator() + textwrap.dedent("""
    [[indicator]]
    id = "safety.public_safety.loop.a"
    name_zh = "甲"
    name_en = "A"
    unit = "%"
    dimension = "public_safety"
    aggregation = "derived"
    formula = "safety.public_safety.loop.b + safety.public_safety.kitchen.count_2h"
    window = "1h"
    direction = "up_bad"
    rollup = "formula"
    owner = "fire_rescue"

    [[indicator]]
    id = "safety.public_safety.loop.b"
    name_zh = "乙"
    name_en = "B"
    unit = "%"
    dimension = "public_safety"
    aggregation = "derived"
    formula = "2 * safety.public_safety.loop.a + safety.public_safety.ghost.count_1h"
    window = "1h"
    direction = "up_bad"
    rollup = "formula"
    owner = "fire_rescue"
    """)
    problems = problems_of(tmp_path, text)
    cyc = _one(problems, "formula", "formula cycle")
    assert "safety.public_safety.loop.a" in cyc.reason and "safety.public_safety.loop.b" in cyc.reason
    _one(problems, "formula", "unknown indicator 'safety.public_safety.ghost.count_1h'")


def test_every_problem_reported_at_once(tmp_path):
    text = indicator(window="soon", owner="nobody", unit="")
    problems = problems_of(tmp_path, text)
    assert {p.field for p in problems} >= {"window", "owner", "unit"}
    with pytest.raises(CatalogError) as err:
        Catalog.load(tmp_path)
    assert len(err.value.problems) == len(problems)
    assert "mine.toml: safety.public_safety.kitchen.count_2h: window: bad window 'soon'" in str(err.value)


def test_syntax_error_and_missing_domain(tmp_path):
    problems = problems_of(tmp_path, 'domain = "safety"\n[[template]\nid = 1')
    _one(problems, "-", "not valid TOML")
    (tmp_path / "mine.toml").unlink()
    _one(problems_of(tmp_path, GOOD.replace('domain = "safety"', "")), "domain", "needs a top-level domain")


def test_vocabulary_errors_in_a_full_copy(tmp_path):
    folder = tmp_path / "cat"
    shutil.copytree(bundled_path(), folder, ignore=shutil.ignore_patterns("__*"))
    dep = (folder / "departments.toml").read_text(encoding="utf-8")
    (folder / "departments.toml").write_text(dep.replace('id = "gas_company"', 'id = "gas_co"'), encoding="utf-8")
    feeds = (folder / "feeds.toml").read_text(encoding="utf-8")
    (folder / "feeds.toml").write_text(feeds.replace('lateness = "2h"\nmetrics = [\n  { id = "pm25"',
                                                     'lateness = "2 hours"\nmetrics = [\n  { id = "pm25"'), encoding="utf-8")
    problems = Catalog.check(folder)
    owners = [p for p in problems if p.field == "owner" and "unknown department 'gas_company'" in p.reason]
    assert owners and all(p.file == "construction.toml" or p.file == "safety.toml" for p in owners)
    assert any(p.file == "feeds.toml" and p.entry == "air_quality" and p.field == "lateness" for p in problems)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Catalog.load(tmp_path / "nowhere")
