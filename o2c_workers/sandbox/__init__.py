"""The sandbox: a simulated Salesforce org and a simulated ERP that agree with each other.

``start_sandbox`` runs both on one seeded ``World``; tests, the demo and ``o2c sandbox`` use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from o2c_workers.sandbox.salesforce import SalesforceConfig, SalesforceServer, serve_salesforce
from o2c_workers.sandbox.world import World, generate_world

if TYPE_CHECKING:
    from o2c_workers.sandbox.erp import ErpConfig


@dataclass
class Sandbox:
    """Both simulators running on one world. ``stop()`` ends them and their senders."""

    world: World
    salesforce: SalesforceServer
    erp: Any
    erp_config: ErpConfig
    sf_config: SalesforceConfig

    @property
    def sf_url(self) -> str:
        return self.salesforce.url

    @property
    def erp_url(self) -> str:
        return str(self.erp.url)

    @property
    def ca_file(self) -> str | None:
        return self.salesforce.ca_file

    def env(self) -> dict[str, str]:
        """The ``O2C_*`` variables that point o2c-workers at this sandbox."""
        out = {
            "O2C_ERP_BASE_URL": self.erp_url,
            "O2C_ERP_API_KEY": self.erp_config.api_key,
            "O2C_ERP_API_SECRET": self.erp_config.api_secret,
            "O2C_ERP_WEBHOOK_SECRET": self.erp_config.webhook_secret,
            "O2C_ERP_TIME_ZONE": self.erp_config.time_zone,
            "O2C_SALESFORCE_INSTANCE_URL": self.sf_url,
            "O2C_SALESFORCE_LOGIN_URL": self.sf_url,
            "O2C_SALESFORCE_API_VERSION": self.sf_config.api_version,
            "O2C_SALESFORCE_CLIENT_ID": self.sf_config.client_id,
            "O2C_SALESFORCE_CLIENT_SECRET": self.sf_config.client_secret,
            "O2C_SALESFORCE_USERNAME": self.sf_config.username,
            "O2C_SALESFORCE_ORG_IDS": self.salesforce.simulator.org_id,
        }
        if self.ca_file:
            out["O2C_SALESFORCE_CA_BUNDLE"] = self.ca_file
            # requests reads this when a call names no CA bundle of its own.
            out["REQUESTS_CA_BUNDLE"] = self.ca_file
        return out

    def stop(self) -> None:
        try:
            self.salesforce.stop()
        finally:
            self.erp.stop()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sandbox(*, world: World | None = None, erp_config: ErpConfig | None = None,
                  sf_config: SalesforceConfig | None = None, host: str = "127.0.0.1",
                  erp_port: int = 8100, sf_port: int = 8200, **generate: Any) -> Sandbox:
    """Start the ERP and Salesforce simulators (port 0 picks a free one).

    Without ``world``, one is generated from ``generate`` (``generate_world``'s arguments).
    """
    from o2c_workers.sandbox.erp import ErpConfig, serve_erp

    world = world or generate_world(**generate)
    erp_config = erp_config or ErpConfig()
    sf_config = sf_config or SalesforceConfig()
    erp = serve_erp(world.erp, erp_config, host=host, port=erp_port)
    try:
        salesforce = serve_salesforce(world, sf_config, host=host, port=sf_port)
    except BaseException:
        erp.stop()
        raise
    return Sandbox(world=world, salesforce=salesforce, erp=erp, erp_config=erp_config,
                   sf_config=sf_config)


__all__ = ["Sandbox", "start_sandbox"]
