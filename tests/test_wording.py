from torchstages.wording import counted


def test_a_count_takes_the_noun_in_its_number():
    assert counted(1, "row") == "1 row" and counted(0, "row") == "0 rows"
    assert counted(2, "extra copy", "extra copies") == "2 extra copies"
    assert counted(1, "extra copy", "extra copies") == "1 extra copy"


def test_a_list_shows_its_first_items_and_says_when_there_are_more():
    from torchstages.wording import listed

    assert listed(["a", "b"]) == "a, b"
    assert listed(["a", "b", "c", "d"], 3) == "a, b, c, ..."
    assert listed([]) == ""
