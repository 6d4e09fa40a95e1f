pub mod housekeeping_run;
