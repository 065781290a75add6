"""Development tooling shared by the demo, the chaos run, the benchmarks and the tests: the
process manager of the fleet, the Procfile reader, private Redis servers. Nothing in the
fleet's production code imports it."""
