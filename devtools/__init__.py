"""Tooling for the tests, the benchmarks and the screenshots, kept out of the app's packages: start the app on a free
port and wait for it (launch.py), feed Chromium a fake camera."""
