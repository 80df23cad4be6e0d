"""The sandbox federation's web app: an origin over the domain ``guichet.federation``."""
