//! Nothing here: the tests are in `tests/`, one file per optional integration.
