"""The tamper-evident exchange journal: who read what, about whom, with which outcome."""
