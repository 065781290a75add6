"""The SOQL builder: names and dot paths checked, ids validated, subqueries spelled by
their child relationship's name."""

from __future__ import annotations

import pytest

from o2c_workers import sfid
from o2c_workers.salesforce import soql

OPP = sfid.to18("006000000000AAA")


def test_relationship_fields_subqueries_and_id_lists():
    text = soql.select("Opportunity", ["Id", "Account.Name"],
                       children=[soql.Subquery("OpportunityLineItems", ["Id", "Quantity"])],
                       where=[soql.ids_in("Id", [OPP, OPP[:15]])], order_by=["Account.Name"])
    assert text == ("SELECT Id, Account.Name, (SELECT Id, Quantity FROM OpportunityLineItems) "
                    f"FROM Opportunity WHERE Id IN ('{OPP}', '{OPP[:15]}') "
                    "ORDER BY Account.Name")


@pytest.mark.parametrize("field", ["Account.", ".Name", "Account..Name", "Account.Na me",
                                   "Account.Name; DELETE"])
def test_a_bad_dot_path_is_refused(field):
    with pytest.raises(ValueError, match="API name"):
        soql.select("Opportunity", [field])


@pytest.mark.parametrize("ids", [[], ["006000000000AAA') OR Id != ('"], ["006000000000AAAXXX"],
                                 [OPP, "nope"]])
def test_an_id_list_takes_well_formed_ids_only(ids):
    with pytest.raises(ValueError, match="id"):
        soql.ids_in("Id", ids)


def test_a_subquery_names_are_checked_too():
    with pytest.raises(ValueError, match="API name"):
        soql.select("Opportunity", ["Id"], children=[soql.Subquery("Line Items", ["Id"])])
    with pytest.raises(ValueError, match="API name"):
        soql.select("Opportunity", ["Id"],
                    children=[soql.Subquery("OpportunityLineItems", ["Id,Name"])])
