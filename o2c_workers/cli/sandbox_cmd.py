"""``o2c sandbox``: run the Salesforce and ERP simulators on one seeded world until Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from o2c_workers.cli.until_stopped import wait_until_stopped
from o2c_workers.sandbox.salesforce import SalesforceConfig

ERP = "ERP simulator"
FAULTS = "ERP faults"
SF = "Salesforce simulator"
OUT = "Salesforce outbound messages"


def _opt(help_text: str, panel: str, *names: str) -> Any:
    return typer.Option(*names, help=help_text, rich_help_panel=panel)


def sandbox(
    seed: Annotated[int, _opt("Seed of the generated world and of every random choice.",
                              "World")] = 7,
    accounts: Annotated[int, _opt("Accounts to generate.", "World")] = 50,
    opportunities: Annotated[int, _opt("Opportunities to generate.", "World")] = 200,
    credit_hold: Annotated[int, _opt("Accounts on credit hold in the ERP.", "World")] = 2,
    missing_tax: Annotated[int, _opt("Accounts in a country without an ERP tax rule.",
                                     "World")] = 2,
    unknown_item: Annotated[int, _opt("Opportunities with a product the ERP does not know.",
                                      "World")] = 2,
    host: Annotated[str, _opt("Interface both simulators listen on.", "World")] = "127.0.0.1",
    erp_port: Annotated[int, _opt("ERP port (0 picks a free one).", ERP)] = 8100,
    erp_webhook_url: Annotated[str | None, _opt(
        "Where the ERP POSTs signed document events (the o2c webhook's ERP route).", ERP)] = None,
    erp_api_key: Annotated[str, _opt("ERP API key.", ERP)] = "sandbox-key",
    erp_api_secret: Annotated[str, _opt("ERP API secret.", ERP)] = "sandbox-secret",  # noqa: S107
    erp_webhook_secret: Annotated[str, _opt("HMAC secret of ERP webhooks.", ERP)] = (
        "sandbox-webhook-secret"),  # noqa: S107
    invoice_delay_s: Annotated[float, _opt(
        "Seconds from a submitted sales order to its invoice.", ERP)] = 2.0,
    payment_delay_s: Annotated[float, _opt(
        "Seconds from a submitted invoice to its payment.", ERP)] = 2.0,
    partial_payment_ratio: Annotated[float, _opt("Share of invoices paid only in part.",
                                                 ERP)] = 0.1,
    unpaid_ratio: Annotated[float, _opt("Share of invoices never paid.", ERP)] = 0.05,
    rate_precision: Annotated[int, _opt("Decimal places of item rates (stock ERPNext: 2; "
                                        "set up for this integration: 6).", ERP)] = 6,
    latency_ms: Annotated[float, _opt("Latency added to every ERP call, ms.", FAULTS)] = 0.0,
    latency_jitter_ms: Annotated[float, _opt("Uniform extra latency up to this, ms.",
                                             FAULTS)] = 0.0,
    error_rate: Annotated[float, _opt("Share of ERP calls answered with a 5xx.", FAULTS)] = 0.0,
    error_status: Annotated[int, _opt("The 5xx status injected errors use.", FAULTS)] = 500,
    rate_limit_per_s: Annotated[float | None, _opt(
        "ERP calls allowed per sliding second; the rest get 429.", FAULTS)] = None,
    concurrency_limit: Annotated[int | None, _opt(
        "ERP calls allowed in flight at once; the rest get 429.", FAULTS)] = None,
    timeout_after_commit_rate: Annotated[float, _opt(
        "Share of ERP writes committed whose answer is then lost.", FAULTS)] = 0.0,
    timeout_hang_s: Annotated[float, _opt("How long a lost answer hangs, s.", FAULTS)] = 15.0,
    maintenance_for_s: Annotated[float | None, _opt(
        "Start with an ERP maintenance window this long (503 + Retry-After), s.",
        FAULTS)] = None,
    sf_port: Annotated[int, _opt("Salesforce port (0 picks a free one).", SF)] = 8200,
    sf_client_id: Annotated[str, _opt("OAuth client id.", SF)] = "sandbox-client-id",
    sf_client_secret: Annotated[str, _opt("OAuth client secret.", SF)] = (
        "sandbox-client-secret"),  # noqa: S107
    sf_username: Annotated[str, _opt("Integration user (JWT sub).", SF)] = (
        "integration@o2c.sandbox"),
    jwt_public_key: Annotated[Path | None, _opt(
        "PEM public key that verifies JWT-bearer assertions (enables that grant).", SF)] = None,
    token_lifetime_s: Annotated[float, _opt("Access token lifetime, s.", SF)] = 7200.0,
    daily_api_requests: Annotated[int, _opt(
        "REST calls allowed per (scaled) day before REQUEST_LIMIT_EXCEEDED.", SF)] = 100_000,
    plain_http: Annotated[bool, _opt(
        "Serve Salesforce over plain HTTP (simple-salesforce needs HTTPS).", SF)] = False,
    state_dir: Annotated[Path | None, _opt(
        "Where the generated CA and server certificate are written.", SF)] = None,
    outbound_url: Annotated[str | None, _opt(
        "Where outbound messages go (the o2c webhook); may hold ?token= or user:pass@.",
        OUT)] = None,
    time_scale: Annotated[float, _opt(
        "Sandbox seconds per real second for retries, the 24 h window and the API day "
        "(3600 makes 24 h last 24 s).", OUT)] = 1.0,
    duplicate_rate: Annotated[float, _opt(
        "Share of acknowledged notifications delivered once more.", OUT)] = 0.0,
    reorder: Annotated[bool, _opt("Deliver due notifications out of order.", OUT)] = False,
    batch_size: Annotated[int, _opt("Notifications per message, 1 to 100.", OUT)] = 100,
    pretty: Annotated[bool, _opt("Pretty-print messages instead of one line.", OUT)] = False,
    send_session_id: Annotated[bool, _opt(
        "Send a live session id instead of xsi:nil.", OUT)] = False,
    retry_base_s: Annotated[float, _opt("First retry interval, sandbox s.", OUT)] = 15.0,
    retry_cap_s: Annotated[float, _opt("Longest retry interval, sandbox s.", OUT)] = 7200.0,
    retry_window_s: Annotated[float, _opt(
        "Age at which an unacknowledged notification is dropped, sandbox s.", OUT)] = 86_400.0,
    outbound_insecure: Annotated[bool, _opt(
        "Do not verify the endpoint's TLS certificate.", OUT)] = False,
) -> None:
    """Run the Salesforce and ERP simulators on one seeded world until Ctrl-C."""
    from o2c_workers.sandbox import start_sandbox
    from o2c_workers.sandbox.erp import ErpConfig, Faults

    if not 1 <= batch_size <= 100:
        raise typer.BadParameter("must be between 1 and 100", param_hint="--batch-size")
    faults = Faults(latency_ms=latency_ms, latency_jitter_ms=latency_jitter_ms,
                    error_rate=error_rate, error_status=error_status,
                    rate_limit_per_s=rate_limit_per_s, concurrency_limit=concurrency_limit,
                    timeout_after_commit_rate=timeout_after_commit_rate,
                    timeout_hang_s=timeout_hang_s, maintenance_for_s=maintenance_for_s)
    erp_config = ErpConfig(api_key=erp_api_key, api_secret=erp_api_secret,
                           webhook_url=erp_webhook_url, webhook_secret=erp_webhook_secret,
                           invoice_delay_s=invoice_delay_s, payment_delay_s=payment_delay_s,
                           partial_payment_ratio=partial_payment_ratio,
                           unpaid_ratio=unpaid_ratio, seed=seed, faults=faults,
                           rate_precision=rate_precision)
    sf_config = SalesforceConfig(
        client_id=sf_client_id, client_secret=sf_client_secret, username=sf_username,
        jwt_public_key=jwt_public_key.read_text() if jwt_public_key else None,
        outbound_url=outbound_url, send_session_id=send_session_id,
        token_lifetime_s=token_lifetime_s, daily_api_requests=daily_api_requests,
        time_scale=time_scale, duplicate_rate=duplicate_rate, reorder=reorder,
        batch_size=batch_size, pretty=pretty, retry_base_s=retry_base_s,
        retry_cap_s=retry_cap_s, retry_window_s=retry_window_s,
        outbound_verify=not outbound_insecure, tls=not plain_http,
        state_dir=str(state_dir) if state_dir else None, seed=seed)
    box = start_sandbox(erp_config=erp_config, sf_config=sf_config, host=host,
                        erp_port=erp_port, sf_port=sf_port, seed=seed, accounts=accounts,
                        opportunities=opportunities, credit_hold=credit_hold,
                        missing_tax=missing_tax, unknown_item=unknown_item)
    try:
        _announce(box)
        wait_until_stopped()
    except KeyboardInterrupt:  # Ctrl-C before the handlers were set
        pass
    finally:
        box.stop()
        typer.echo("sandbox stopped")


def _announce(box: Any) -> None:
    console = Console(highlight=False)
    table = Table(title="o2c sandbox", show_header=False)
    world = box.world
    sim = box.salesforce.simulator
    rows = [
        ("Salesforce", box.sf_url), ("ERP", box.erp_url),
        ("Salesforce org id", sim.org_id),
        ("Salesforce client id / secret",
         f"{box.sf_config.client_id} / {box.sf_config.client_secret}"),
        ("Salesforce username", box.sf_config.username),
        ("Salesforce CA file", box.ca_file or "(plain HTTP)"),
        ("ERP api key / secret", f"{box.erp_config.api_key} / {box.erp_config.api_secret}"),
        ("ERP webhook secret", box.erp_config.webhook_secret),
        ("Outbound messages to", box.sf_config.outbound_url or "(queued until set)"),
        ("ERP webhooks to", box.erp_config.webhook_url or "(recorded only)"),
        ("World", f"{len(world.of('Account'))} accounts, {len(world.opportunity_ids)} "
                  f"opportunities, {len(world.expected_failures)} built to fail"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    console.print("Point o2c-workers at it:")
    for key, value in box.env().items():
        console.print(f"  export {key}={value}", soft_wrap=True)
    trust = f"--cacert {box.ca_file} " if box.ca_file else ""
    console.print(f"Win opportunities: curl {trust}-X POST "
                  f"{box.sf_url}/_sandbox/opportunities/win -d '{{\"ids\": \"all\"}}'",
                  soft_wrap=True)
    console.print(f"Deliveries: {box.sf_url}/_sandbox/deliveries   Ctrl-C stops.")
