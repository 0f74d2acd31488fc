//! The decision core: a pure function from a typed event, configuration and a snapshot of job state to actions.
