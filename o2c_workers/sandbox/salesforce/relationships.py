"""The org's relationships by name, as SOQL and the REST related lists know them."""

from __future__ import annotations

#: (parent type, child relationship name) → (child type, the child's lookup to the parent).
CHILD_RELATIONSHIPS = {
    ("Opportunity", "OpportunityLineItems"): ("OpportunityLineItem", "OpportunityId"),
    ("Account", "Contacts"): ("Contact", "AccountId"),
    ("Account", "Opportunities"): ("Opportunity", "AccountId"),
}
#: (child type, relationship name) → (parent type, the child's lookup field).
PARENT_RELATIONSHIPS = {
    ("Opportunity", "Account"): ("Account", "AccountId"),
    ("Contact", "Account"): ("Account", "AccountId"),
    ("OpportunityLineItem", "Opportunity"): ("Opportunity", "OpportunityId"),
    ("OpportunityLineItem", "Product2"): ("Product2", "Product2Id"),
}
