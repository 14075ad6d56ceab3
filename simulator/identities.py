"""Who the simulated people of 秀山 are called and what numbers they have: names drawn
from the county's common surnames and given names, valid resident ID numbers and mobile
numbers, each drawn from the generator it is given (so a seed gives the same people).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date

from gateway.register.idnumber import check_digit
from gateway.register.vocabulary import Gender

__all__ = [
    "FEMALE_GIVEN",
    "HELPER_GIVEN",
    "HELPER_TITLES",
    "MALE_GIVEN",
    "SURNAMES",
    "TEAM_GIVEN",
    "id_number_for",
    "mobile_number",
    "unique",
]

# 秀山土家族苗族自治县: the first six digits of residents' ID numbers.
_REGION_CODE = "500241"

# Surnames common among the Tujia, Miao and Han families of 秀山, roughly by frequency.
SURNAMES = (
    "杨杨杨吴吴吴龙龙田田彭彭向向白石王王李李张张刘陈冉胡周罗黄姚滕"  # weighted by repetition
)
# fmt: off
MALE_GIVEN = (
    "德明", "国华", "光荣", "世清", "宗富", "永福", "正发", "昌友", "成林", "家贵", "启明", "建国",
    "树清", "文才", "开银", "仕奎", "泽民", "绍华", "金山", "明亮", "清和", "光辉", "再兴",
)
FEMALE_GIVEN = (
    "秀英", "桂英", "玉兰", "翠华", "淑芬", "凤英", "春花", "兰芝", "素珍", "秀珍", "桂兰", "玉珍",
    "菊花", "银花", "金秀", "月娥", "素芳", "秀兰", "碧云", "德秀", "明英", "仙桃",
)
HELPER_GIVEN = (
    "海军", "晓燕", "建华", "丽娟", "勇", "静", "小平", "红梅", "志刚", "春燕", "文军", "艳",
    "飞", "兴旺", "丽", "长江",
)
HELPER_TITLES = (
    "村支书", "村主任", "村综治专干", "网格员", "驻村工作队员", "村妇联主席",
)
TEAM_GIVEN = (
    "大勇", "正权", "光明", "小军", "代兵", "云", "国强", "永红", "林", "德胜", "春林", "晓东",
)
# Mobile prefixes of the three carriers. 199 is left out on purpose: emergency-team numbers
# are built from it (see simulator.household.emergency_team) so that they can never collide
# with random ones.
_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155",
    "156", "157", "158", "159", "177", "180", "181", "182", "183", "186", "187", "188", "189",
)
# fmt: on


def id_number_for(rng: random.Random, born: date, gender: Gender) -> str:
    # Digits 15-17 are the sequence code; the 17th is odd for men and even for women.
    gender_digit = rng.choice("13579" if gender is Gender.MALE else "02468")
    first17 = f"{_REGION_CODE}{born:%Y%m%d}{rng.randint(0, 99):02d}{gender_digit}"
    return first17 + check_digit(first17)


def mobile_number(rng: random.Random) -> str:
    return f"+86{rng.choice(_MOBILE_PREFIXES)}{rng.randint(0, 99_999_999):08d}"


def unique(make: Callable[[], str], used: set[str]) -> str:
    while True:
        value = make()
        if value not in used:
            used.add(value)
            return value
