//! State-machine tests: simulated time, no processes, no sleeps.
