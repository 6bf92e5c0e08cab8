"""Single sign-on: accounts vouched for by an LDAP directory (ldap.py) or an OpenID provider
(oidc.py). The core offers the hooks (access/identity.py: the Authenticator's directory and
provisioner, the sources an account may be switched to); app.py installs what is configured.
"""
