"""The agent flow through a Python client generated from the running service's /openapi.json
(openapi-python-client), type-checked by mypy --strict: login -> search -> impersonate -> refresh
-> logout. Each answer must parse into the model the document names for its status (a 201 the
generator cannot type comes back as None or raises), and the values must be what the models say.

Environment: GLUE_BASE (the service), AGENT_USERNAME, AGENT_PASSWORD, CUSTOMER_EMAIL.
"""

import os

from glue_client import AuthenticatedClient, Client
from glue_client.api.agent_assist import (
    get_agent_customer_search,
    post_agent_access_tokens,
    post_agent_customer_impersonation_access_tokens,
)
from glue_client.api.tokens import (
    delete_all_refresh_tokens,
    delete_refresh_token,
    post_refresh_tokens,
)
from glue_client.models import (
    AgentAccessTokenDocument,
    AgentAccessTokenRequest,
    AgentAccessTokenRequestAttributes,
    AgentAccessTokenRequestData,
    AgentCustomerImpersonationAccessTokenDocument,
    AgentCustomerImpersonationAccessTokenRequest,
    AgentCustomerImpersonationAccessTokenRequestAttributes,
    AgentCustomerImpersonationAccessTokenRequestData,
    CustomerSearchDocument,
    ErrorDocument,
    RefreshTokenDocument,
    RefreshTokenRequest,
    RefreshTokenRequestAttributes,
    RefreshTokenRequestData,
)


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set")
    return value


def login(client: Client, password: str) -> AgentAccessTokenDocument | ErrorDocument | None:
    return post_agent_access_tokens.sync(
        client=client,
        body=AgentAccessTokenRequest(
            data=AgentAccessTokenRequestData(
                type_="agent-access-tokens",
                attributes=AgentAccessTokenRequestAttributes(
                    username=env("AGENT_USERNAME"), password=password
                ),
            )
        ),
    )


def main() -> None:
    base = env("GLUE_BASE")
    anonymous = Client(base_url=base, raise_on_unexpected_status=True)

    agent = login(anonymous, env("AGENT_PASSWORD"))
    assert isinstance(agent, AgentAccessTokenDocument), f"login: {agent!r}"
    assert agent.data.type_ == "agent-access-tokens"
    assert agent.data.attributes.token_type == "Bearer"

    refused = login(anonymous, "not the password")
    assert isinstance(refused, ErrorDocument), f"wrong password: {refused!r}"
    assert refused.errors[0].code == "4101"

    agent_header = f"Bearer {agent.data.attributes.access_token}"
    as_agent = AuthenticatedClient(
        base_url=base, token=agent.data.attributes.access_token, raise_on_unexpected_status=True
    )

    found = get_agent_customer_search.sync(
        client=as_agent, q=env("CUSTOMER_EMAIL"), pagelimit=5, x_agent_authorization=agent_header
    )
    assert isinstance(found, CustomerSearchDocument), f"search: {found!r}"
    customer = found.data[0].attributes.customers[0]
    assert customer.email == env("CUSTOMER_EMAIL")

    acting = post_agent_customer_impersonation_access_tokens.sync(
        client=as_agent,
        x_agent_authorization=agent_header,
        body=AgentCustomerImpersonationAccessTokenRequest(
            data=AgentCustomerImpersonationAccessTokenRequestData(
                type_="agent-customer-impersonation-access-tokens",
                attributes=AgentCustomerImpersonationAccessTokenRequestAttributes(
                    customer_reference=customer.customer_reference
                ),
            )
        ),
    )
    assert isinstance(acting, AgentCustomerImpersonationAccessTokenDocument), f"impersonation: {acting!r}"
    assert acting.data.type_ == "agent-customer-impersonation-access-tokens"

    refreshed = post_refresh_tokens.sync(
        client=anonymous,
        body=RefreshTokenRequest(
            data=RefreshTokenRequestData(
                type_="refresh-tokens",
                attributes=RefreshTokenRequestAttributes(
                    refresh_token=acting.data.attributes.refresh_token
                ),
            )
        ),
    )
    assert isinstance(refreshed, RefreshTokenDocument), f"refresh: {refreshed!r}"
    assert refreshed.data.attributes.refresh_token != acting.data.attributes.refresh_token

    as_customer = AuthenticatedClient(
        base_url=base,
        token=refreshed.data.attributes.access_token,
        raise_on_unexpected_status=True,
    )
    one = delete_refresh_token.sync_detailed(
        refreshed.data.attributes.refresh_token, client=as_customer
    )
    assert one.status_code == 204, one
    every = delete_all_refresh_tokens.sync_detailed(client=as_agent)
    assert every.status_code == 204, every

    # The authenticated client also sends the dead token in Authorization, which every route
    # checks first: 401/001 (the TypeScript flow sends only the agent header and sees 4102).
    dead = get_agent_customer_search.sync(client=as_agent, q="a", x_agent_authorization=agent_header)
    assert isinstance(dead, ErrorDocument), f"after logout: {dead!r}"
    assert dead.errors[0].code == "001", dead

    print("Python client: login -> search -> impersonate -> refresh -> logout passed")


if __name__ == "__main__":
    main()
