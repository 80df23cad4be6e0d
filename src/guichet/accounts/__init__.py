"""People of the portal: accounts, roles, organisation memberships, sign-in and sessions."""
