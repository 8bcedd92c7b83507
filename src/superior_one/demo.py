"""Demo organizations and accounts for the run command; safe to run repeatedly.

``python -m superior_one.demo`` prints every demo login with its role.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from superior_one.accounts.bootstrap import create_platform_admin
from superior_one.accounts.models import Organization, OrganizationType, Role, User
from superior_one.auth.passwords import PasswordService
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.resources import open_resources


@dataclass(frozen=True)
class DemoAccount:
    email: str
    role: Role
    organization_name: str
    organization_type: OrganizationType


DEMO_ADMIN_EMAIL = "admin@superior-one.example"
DEMO_ACCOUNTS = (
    DemoAccount(
        "shipper@demo.example", Role.ORG_ADMIN, "Granite State Aggregates", OrganizationType.SHIPPER
    ),
    DemoAccount(
        "dispatch@demo.example", Role.DISPATCHER, "Cascade Haulers LLC", OrganizationType.CARRIER
    ),
    DemoAccount(
        "carrier-admin@demo.example",
        Role.ORG_ADMIN,
        "Cascade Haulers LLC",
        OrganizationType.CARRIER,
    ),
    DemoAccount(
        "driver@demo.example", Role.DRIVER, "Cascade Haulers LLC", OrganizationType.CARRIER
    ),
    DemoAccount(
        "broker@demo.example", Role.ORG_ADMIN, "Keystone Freight Brokerage", OrganizationType.BROKER
    ),
)


ROLE_WORDS = {Role.ORG_ADMIN: "admin", Role.DISPATCHER: "dispatcher", Role.DRIVER: "driver"}


def demo_logins() -> list[tuple[str, str]]:
    """Return each seeded login's email and role ("carrier dispatcher, Cascade Haulers LLC")."""
    return [
        (DEMO_ADMIN_EMAIL, "platform admin"),
        *(
            (
                a.email,
                f"{a.organization_type.lower()} {ROLE_WORDS[a.role]}, {a.organization_name}",
            )
            for a in DEMO_ACCOUNTS
        ),
    ]


async def seed_demo_accounts(settings: Settings) -> list[str]:
    """Create the demo admin, organizations and users; return the emails."""
    password = settings.demo_password.get_secret_value()
    await create_platform_admin(settings, DEMO_ADMIN_EMAIL, password)
    passwords = PasswordService(settings)
    password_hash = passwords.hash(password)

    async with (
        open_resources(settings, pool_size=1) as resources,
        unit_of_work(resources.sessionmaker) as session,
    ):
        organizations: dict[str, Organization] = {}
        for account in DEMO_ACCOUNTS:
            organization = organizations.get(account.organization_name)
            if organization is None:
                organization = (
                    await session.execute(
                        select(Organization).where(Organization.name == account.organization_name)
                    )
                ).scalar_one_or_none()
            if organization is None:
                organization = Organization(
                    name=account.organization_name,
                    type=account.organization_type,
                    is_verified=True,
                )
                session.add(organization)
                await session.flush()
            organizations[account.organization_name] = organization

            exists = (
                await session.execute(select(User.id).where(User.email == account.email))
            ).scalar_one_or_none()
            if exists is None:
                session.add(
                    User(
                        organization_id=organization.id,
                        email=account.email,
                        full_name=account.email.split("@")[0].title(),
                        password_hash=password_hash,
                        role=account.role,
                    )
                )
    return [DEMO_ADMIN_EMAIL, *(a.email for a in DEMO_ACCOUNTS)]


if __name__ == "__main__":
    width = max(len(email) for email, _ in demo_logins())
    for email, role in demo_logins():
        print(f"{email:<{width}}  {role}")
