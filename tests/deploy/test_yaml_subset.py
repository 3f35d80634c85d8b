"""The fallback YAML loader reads the constructs deploy/ uses exactly as YAML defines them, and refuses the rest."""

import pytest

from tests.deploy.yaml_subset import SubsetLoader, UnsupportedYaml

CASES = [
    ("a: 1\nb: two\nc: 2.5\nd: true\ne: null\nf:\n", {"a": 1, "b": "two", "c": 2.5, "d": True, "e": None, "f": None}),
    ("q: \"x # y\" # a comment\nr: 'it''s'\n", {"q": "x # y", "r": "it's"}),
    (
        "image: rabbitmq:3.13-management\nurl: amqp://u:${P:?x}@h:5672/\n",
        {"image": "rabbitmq:3.13-management", "url": "amqp://u:${P:?x}@h:5672/"},
    ),
    ('ports:\n  - "2525:2525"\n  - 1.1.1.1:53\n', {"ports": ["2525:2525", "1.1.1.1:53"]}),
    ("drop:\n- ALL\nnext: 1\n", {"drop": ["ALL"], "next": 1}),
    ('test: ["CMD", "python", 3]\nempty: []\nnone: {}\n', {"test": ["CMD", "python", 3], "empty": [], "none": {}}),
    (
        "items:\n  - name: a\n    sub:\n      - x\n  - name: b\n",
        {"items": [{"name": "a", "sub": ["x"]}, {"name": "b"}]},
    ),
    (
        "base: &base\n  k: 1\n  m: 2\nuse:\n  <<: *base\n  m: 3\nalias: *base\n",
        {"base": {"k": 1, "m": 2}, "use": {"k": 1, "m": 3}, "alias": {"k": 1, "m": 2}},
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_subset_loader_reads_like_yaml(text: str, expected: object) -> None:
    assert SubsetLoader(text).load() == expected


@pytest.mark.parametrize("text", ["a: |\n  text\n", "a: {b: 1}\n", "a: [1, [2]]\n", "a: !!str 1\n"])
def test_subset_loader_refuses_what_it_does_not_support(text: str) -> None:
    with pytest.raises(UnsupportedYaml):
        SubsetLoader(text).load()
