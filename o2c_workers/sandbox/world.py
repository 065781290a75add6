"""The data both simulators are seeded with, so that they agree with each other.

``generate_world`` builds a deterministic Salesforce org (accounts, contacts, products, price
book entries, opportunities and their line items) and the ``ErpSeed`` that mirrors it: the
same item codes and prices, tax rules for every billing country but a few, and a credit hold
on a few accounts. ``World.expected_failures`` names the opportunities built to fail and why.
Money is ``Decimal``; currencies are ISO 4217 codes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from o2c_workers import sfid

CENT = Decimal("0.01")
#: The stages an opportunity of the seed can be in; none of them is won or lost.
OPEN_STAGES = {"Prospecting": 10, "Qualification": 20, "Proposal/Price Quote": 75,
               "Negotiation/Review": 90}
#: Failure categories of ``World.expected_failures``.
CREDIT_HOLD, TAX_CONFIGURATION, UNKNOWN_ITEM = "credit_hold", "tax_configuration", "unknown_item"

Record = dict[str, Any]


@dataclass
class ItemSeed:
    """An ERP Item; ``code`` equals the Salesforce Product2.ProductCode."""

    code: str
    name: str
    #: Selling price per currency, the same as the Salesforce PricebookEntry.UnitPrice.
    prices: dict[str, Decimal]
    uom: str = "Nos"


@dataclass
class ErpSeed:
    """What the ERP knows before any order arrives."""

    items: list[ItemSeed] = field(default_factory=list)
    #: Billing country → tax rate in percent (a Tax Rule and its template exist for each).
    tax_rates: dict[str, Decimal] = field(default_factory=dict)
    #: Salesforce Account id (18 chars) → credit limit, applied when the Customer is created.
    credit_limits: dict[str, Decimal] = field(default_factory=dict)
    #: Salesforce Account ids whose Customer is created frozen (credit hold).
    credit_hold: set[str] = field(default_factory=set)
    default_credit_limit: Decimal = Decimal("1000000.00")
    company: str = "O2C Sandbox Inc"
    company_currency: str = "USD"


@dataclass
class World:
    """A seeded Salesforce org and the ERP seed that agrees with it."""

    seed: int
    org_id: str
    user_id: str
    #: Salesforce object type → its records (field name → value), in creation order.
    records: dict[str, list[Record]]
    erp: ErpSeed
    #: Opportunity id → the category it is built to fail with.
    expected_failures: dict[str, str]

    def of(self, sobject: str) -> list[Record]:
        return self.records.get(sobject, [])

    @property
    def opportunity_ids(self) -> list[str]:
        return [opp["Id"] for opp in self.of("Opportunity")]

    def get(self, sobject: str, record_id: str) -> Record:
        for record in self.of(sobject):
            if sfid.same(record["Id"], record_id):
                return record
        raise KeyError(f"{sobject} {record_id}")

    def line_items(self, opportunity_id: str) -> list[Record]:
        return [line for line in self.of("OpportunityLineItem")
                if sfid.same(line["OpportunityId"], opportunity_id)]


#: country → (currency, tax rate %, company suffix, cities)
_COUNTRIES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "United States": ("USD", "7.25", "Inc.", ("Austin", "Chicago", "Denver", "Seattle", "Boston")),
    "Canada": ("USD", "13", "Ltd.", ("Toronto", "Vancouver", "Montreal")),
    "Germany": ("EUR", "19", "GmbH", ("München", "Hamburg", "Köln", "Stuttgart")),
    "France": ("EUR", "20", "SAS", ("Lyon", "Paris", "Toulouse", "Nantes")),
    "Netherlands": ("EUR", "21", "B.V.", ("Rotterdam", "Utrecht", "Eindhoven")),
    "Spain": ("EUR", "21", "S.L.", ("Madrid", "Valencia", "Bilbao")),
    "Italy": ("EUR", "22", "S.p.A.", ("Milano", "Torino", "Bologna")),
    "Ireland": ("EUR", "23", "Ltd", ("Dublin", "Cork", "Galway")),
    "United Kingdom": ("GBP", "20", "Ltd", ("London", "Manchester", "Leeds", "Bristol")),
    "Australia": ("USD", "10", "Pty Ltd", ("Sydney", "Melbourne", "Brisbane")),
    "Japan": ("USD", "10", "K.K.", ("Tokyo", "Osaka", "Nagoya")),
    "Singapore": ("USD", "9", "Pte. Ltd.", ("Singapore",)),
}
#: Countries no tax rule exists for in the ERP; only the ``missing_tax`` accounts use them.
_UNTAXED_COUNTRIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "Brazil": ("USD", "Ltda.", ("São Paulo", "Curitiba")),
    "India": ("USD", "Pvt Ltd", ("Bengaluru", "Pune")),
    "Mexico": ("USD", "S.A. de C.V.", ("Monterrey", "Guadalajara")),
    "South Africa": ("USD", "(Pty) Ltd", ("Cape Town", "Durban")),
}
_FX = {"USD": Decimal("1"), "EUR": Decimal("0.92"), "GBP": Decimal("0.79"),
       "CAD": Decimal("1.36"), "JPY": Decimal("151")}
_NAME_HEADS = (
    "Northwind", "Blue Harbor", "Alder", "Brightline", "Cobalt", "Dunmore", "Evergreen",
    "Fjord", "Granite", "Helix", "Ironbridge", "Juniper", "Kestrel", "Lumen", "Meridian",
    "Nordhavn", "Oakridge", "Pinnacle", "Redwood", "Sterling", "Tidewater", "Vantage",
    "Westbrook", "Yarrow", "Zenith", "Baker & Finch", "Hale & Moreno", "Brückner", "Lefèvre",
    "Calder", "Ashgrove", "Silverline", "Harbourview", "Quayside", "Larkspur",
)
_NAME_TAILS = (
    "Logistics", "Manufacturing", "Foods", "Pharma", "Energy", "Retail", "Systems", "Robotics",
    "Textiles", "Analytics", "Medical", "Freight", "Components", "Labs", "Industries",
)
_INDUSTRIES = ("Manufacturing", "Retail", "Healthcare", "Energy", "Transportation",
               "Technology", "Consumer Goods", "Pharmaceuticals")
_FIRST = ("Anna", "Ben", "Chloé", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
          "Kira", "Liam", "Maya", "Noah", "Olga", "Priya", "Rafael", "Sofia", "Tomás", "Yuki")
_LAST = ("Andersen", "Becker", "Costa", "Dubois", "Evans", "Fischer", "García", "Hughes",
         "Ivanova", "Jensen", "Kowalski", "Lopez", "Martin", "Nakamura", "O'Brien", "Patel",
         "Rossi", "Schmidt", "Tanaka", "Weber")
_TITLES = ("Head of Procurement", "CFO", "Operations Manager", "IT Director", "Buyer",
           "Accounts Payable Lead")
#: code → (name, family, list price in USD)
_PRODUCTS: dict[str, tuple[str, str, str]] = {
    "GW-200": ("Edge Gateway GW-200", "Hardware", "1890.00"),
    "GW-400": ("Edge Gateway GW-400", "Hardware", "3450.00"),
    "SNS-T10": ("Temperature Sensor T10", "Hardware", "89.50"),
    "SNS-V20": ("Vibration Sensor V20", "Hardware", "149.00"),
    "CAM-4K": ("Inspection Camera 4K", "Hardware", "2299.00"),
    "LIC-ANL-Y": ("Analytics Suite, annual seat", "Software", "1200.00"),
    "LIC-FLT-Y": ("Fleet Monitor, annual seat", "Software", "780.00"),
    "LIC-API-Y": ("API Access, annual", "Software", "4800.00"),
    "SUP-GOLD": ("Gold Support, 12 months", "Services", "9600.00"),
    "SUP-STD": ("Standard Support, 12 months", "Services", "3600.00"),
    "SVC-INST": ("On-site Installation (day)", "Services", "1450.00"),
    "SVC-TRN": ("Operator Training (day)", "Services", "1150.00"),
    "KIT-MNT": ("Mounting Kit", "Accessories", "45.90"),
    "CBL-10M": ("Shielded Cable 10 m", "Accessories", "27.40"),
}
#: Products that exist in Salesforce but were never created as ERP Items.
_UNKNOWN_PRODUCTS: dict[str, tuple[str, str, str]] = {
    "LEG-S90": ("Legacy Sensor S90 (discontinued)", "Hardware", "64.00"),
    "PRM-BNDL-24": ("Promo Bundle 2024", "Bundles", "4990.00"),
}
_DISCOUNTS = (Decimal("5"), Decimal("10"), Decimal("12.5"), Decimal("15"))
_EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class _Ids:
    """Deterministic 18-character ids with real key prefixes, one counter per prefix."""

    _DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

    def __init__(self, seed: int) -> None:
        self._pod = "5" + self._DIGITS[10 + seed % 52]
        self._base = (seed * 2_654_435_761) % 62**4 * 62**2
        self._counters: dict[str, int] = {}

    def new(self, prefix: str) -> str:
        n = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = n
        n += self._base
        body = ""
        for _ in range(9):
            n, rem = divmod(n, 62)
            body = self._DIGITS[rem] + body
        return sfid.to18(f"{prefix}{self._pod}0{body}")


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def line_total(quantity: Decimal, unit_price: Decimal, discount: Decimal | None) -> Decimal:
    """Salesforce's OpportunityLineItem.TotalPrice, rounded to the cent."""
    factor = 1 - (discount or Decimal(0)) / 100
    return money(quantity * unit_price * factor)


def generate_world(*, seed: int = 7, accounts: int = 50, opportunities: int = 200,
                   credit_hold: int = 2, missing_tax: int = 2, unknown_item: int = 2,
                   currencies: tuple[str, ...] = ("USD", "EUR", "GBP")) -> World:
    """Build the seed org and its ERP mirror; the same arguments give the same world."""
    failing_accounts = credit_hold + missing_tax
    if accounts < failing_accounts + (1 if unknown_item else 0):
        raise ValueError("not enough accounts for the requested failures")
    if opportunities < failing_accounts + unknown_item:
        raise ValueError("not enough opportunities for the requested failures")
    rng = random.Random(seed)
    ids = _Ids(seed)
    builder = _Builder(rng, ids, currencies)
    org_id, user_id = ids.new("00D"), ids.new("005")
    pricebook = builder.pricebook()
    known = builder.products(_PRODUCTS, pricebook["Id"])
    unknown = builder.products(dict(list(_UNKNOWN_PRODUCTS.items())[:max(1, unknown_item)]),
                               pricebook["Id"]) if unknown_item else []
    accts = [builder.account(i, user_id, taxed=i >= missing_tax) for i in range(accounts)]
    held = accts[missing_tax:failing_accounts]
    expected: dict[str, str] = {}
    opps: list[Record] = []
    for i in range(opportunities):
        # The failing accounts get exactly one opportunity each, the others share the rest.
        account = accts[i] if i < failing_accounts else accts[
            failing_accounts + rng.randrange(accounts - failing_accounts)]
        bad_item = failing_accounts <= i < failing_accounts + unknown_item
        opp = builder.opportunity(account, pricebook["Id"], user_id, known,
                                  unknown[(i - failing_accounts) % len(unknown)]
                                  if bad_item else None)
        opps.append(opp)
        if i < missing_tax:
            expected[opp["Id"]] = TAX_CONFIGURATION
        elif i < failing_accounts:
            expected[opp["Id"]] = CREDIT_HOLD
        elif bad_item:
            expected[opp["Id"]] = UNKNOWN_ITEM
    # Spread the failing records among the others, as in a real org.
    rng.shuffle(accts)
    rng.shuffle(opps)
    erp = ErpSeed(
        items=[ItemSeed(code=p["ProductCode"], name=p["Name"],
                        prices=builder.prices[p["ProductCode"]]) for p in known],
        tax_rates={country: Decimal(rate) for country, (_, rate, _, _) in _COUNTRIES.items()},
        credit_hold={a["Id"] for a in held},
    )
    records = {
        "Account": accts, "Contact": builder.contacts, "Pricebook2": [pricebook],
        "Product2": known + unknown, "PricebookEntry": builder.entries,
        "Opportunity": opps, "OpportunityLineItem": builder.lines,
    }
    return World(seed=seed, org_id=org_id, user_id=user_id, records=records, erp=erp,
                 expected_failures=expected)


class _Builder:
    def __init__(self, rng: random.Random, ids: _Ids, currencies: tuple[str, ...]) -> None:
        self.rng, self.ids, self.currencies = rng, ids, currencies
        self.contacts: list[Record] = []
        self.entries: list[Record] = []
        self.lines: list[Record] = []
        #: ProductCode → currency → (PricebookEntry id, price)
        self.prices: dict[str, dict[str, Decimal]] = {}
        self._entry_ids: dict[tuple[str, str], str] = {}
        self._names: set[str] = set()

    def _stamp(self, days: int) -> datetime:
        return _EPOCH + timedelta(days=days, minutes=self.rng.randrange(600))

    def pricebook(self) -> Record:
        return {"Id": self.ids.new("01s"), "Name": "Standard Price Book", "IsActive": True,
                "IsStandard": True}

    def products(self, catalog: dict[str, tuple[str, str, str]],
                 pricebook_id: str) -> list[Record]:
        out = []
        for code, (name, family, usd) in catalog.items():
            product = {"Id": self.ids.new("01t"), "Name": name, "ProductCode": code,
                       "Family": family, "IsActive": True, "Description": None}
            self.prices[code] = {}
            for currency in self.currencies:
                price = money(Decimal(usd) * _FX.get(currency, Decimal(1)))
                self.prices[code][currency] = price
                entry_id = self.ids.new("01u")
                self._entry_ids[(code, currency)] = entry_id
                self.entries.append({
                    "Id": entry_id, "Name": name, "Pricebook2Id": pricebook_id,
                    "Product2Id": product["Id"], "ProductCode": code, "UnitPrice": price,
                    "CurrencyIsoCode": currency, "IsActive": True, "UseStandardPrice": False})
            out.append(product)
        return out

    def _company(self, suffix: str) -> str:
        while True:
            name = f"{self.rng.choice(_NAME_HEADS)} {self.rng.choice(_NAME_TAILS)} {suffix}"
            if name not in self._names:
                self._names.add(name)
                return name

    def account(self, index: int, owner_id: str, *, taxed: bool) -> Record:
        if taxed:
            country = self.rng.choice(list(_COUNTRIES))
            currency, _, suffix, cities = _COUNTRIES[country]
        else:
            country = list(_UNTAXED_COUNTRIES)[index % len(_UNTAXED_COUNTRIES)]
            currency, suffix, cities = _UNTAXED_COUNTRIES[country]
        if currency not in self.currencies:
            currency = self.currencies[0]
        name = self._company(suffix)
        created = self._stamp(self.rng.randrange(-700, -30))
        account = {
            "Id": self.ids.new("001"), "Name": name, "AccountNumber": f"ACC-{index + 1:05d}",
            "Type": "Customer", "Industry": self.rng.choice(_INDUSTRIES),
            "BillingStreet": f"{self.rng.randrange(1, 240)} {self.rng.choice(_LAST)} Street",
            "BillingCity": self.rng.choice(cities),
            "BillingPostalCode": f"{self.rng.randrange(10000, 99999)}",
            "BillingCountry": country, "CurrencyIsoCode": currency,
            "Phone": f"+{self.rng.randrange(1, 99)} {self.rng.randrange(100, 999)} "
                     f"{self.rng.randrange(100000, 9999999)}",
            "Website": "www." + "".join(c for c in name.split()[0].lower() if c.isascii()
                                        and c.isalnum()) + ".example",
            "NumberOfEmployees": self.rng.choice((40, 120, 350, 800, 2500, 12000)),
            "AnnualRevenue": Decimal(self.rng.randrange(2, 900)) * Decimal("1000000"),
            "OwnerId": owner_id, "ERP_Customer_Number__c": None,
            "CreatedDate": created, "LastModifiedDate": created,
        }
        for _ in range(self.rng.randrange(1, 4)):
            self.contacts.append(self._contact(account))
        return account

    def _contact(self, account: Record) -> Record:
        first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
        domain = str(account["Website"]).removeprefix("www.")
        local = "".join(c for c in f"{first}.{last}".lower() if c.isascii() and c != "'")
        return {
            "Id": self.ids.new("003"), "AccountId": account["Id"], "FirstName": first,
            "LastName": last, "Name": f"{first} {last}", "Title": self.rng.choice(_TITLES),
            "Email": f"{local}@{domain}",
            "Phone": account["Phone"][:-2] + f"{self.rng.randrange(10, 99)}",
            "MailingCity": account["BillingCity"], "MailingCountry": account["BillingCountry"],
        }

    def opportunity(self, account: Record, pricebook_id: str, owner_id: str,
                    products: list[Record], extra: Record | None) -> Record:
        stage = self.rng.choice(list(OPEN_STAGES))
        created = self._stamp(self.rng.randrange(-120, -5))
        opp_id = self.ids.new("006")
        currency = account["CurrencyIsoCode"]
        chosen = self.rng.sample(products, self.rng.randrange(1, 5))
        if extra is not None:
            chosen.append(extra)
        lines = [self._line(opp_id, currency, product, n) for n, product in enumerate(chosen)]
        self.lines.extend(lines)
        family = chosen[0]["Family"].lower()
        return {
            "Id": opp_id, "AccountId": account["Id"], "OwnerId": owner_id,
            "Name": f"{account['Name']} - {family} {created:%b %Y}",
            "StageName": stage, "Probability": Decimal(OPEN_STAGES[stage]),
            "CloseDate": date(2026, 12, 1) + timedelta(days=self.rng.randrange(0, 120)),
            "CurrencyIsoCode": currency, "Pricebook2Id": pricebook_id,
            "Amount": sum((line["TotalPrice"] for line in lines), Decimal("0.00")),
            "TotalOpportunityQuantity": sum((line["Quantity"] for line in lines), Decimal(0)),
            "Type": self.rng.choice(("New Customer", "Existing Customer - Upgrade")),
            "LeadSource": self.rng.choice(("Web", "Partner Referral", "Trade Show")),
            "Description": None, "IsWon": False, "IsClosed": False, "HasOpportunityLineItem": True,
            "ERP_Order_Number__c": None, "ERP_Order_Status__c": None,
            "Invoice_Status__c": None, "Payment_Status__c": None,
            "CreatedDate": created, "LastModifiedDate": created,
        }

    def _line(self, opp_id: str, currency: str, product: Record, n: int) -> Record:
        code = product["ProductCode"]
        price = self.prices[code][currency]
        quantity = Decimal(self.rng.choice((1, 1, 2, 3, 5, 10, 20, 50)))
        discount = self.rng.choice(_DISCOUNTS) if self.rng.random() < 0.3 else None
        return {
            "Id": self.ids.new("00k"), "OpportunityId": opp_id, "Product2Id": product["Id"],
            "PricebookEntryId": self._entry_ids[(code, currency)], "ProductCode": code,
            "Name": product["Name"], "Quantity": quantity, "ListPrice": price,
            "UnitPrice": price, "Discount": discount,
            "TotalPrice": line_total(quantity, price, discount), "SortOrder": n + 1,
            "CurrencyIsoCode": currency, "Description": None,
        }
