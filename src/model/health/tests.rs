use super::*;

#[test]
fn a_problem_lasts_from_its_first_failure_to_the_next_success() {
    let health = Health::default();
    assert!(health.problems().is_empty());
    health.failed(Part::Store, "database or disk is full");
    let first = health.problems()[0].since;
    std::thread::sleep(std::time::Duration::from_millis(5));
    health.failed(Part::Archive, "No space left on device (os error 28)");
    health.failed(Part::Store, "database or disk is full, again");
    let problems = health.problems();
    assert_eq!(problems.len(), 2);
    assert_eq!(problems[0].part, Part::Archive);
    assert_eq!(
        problems[1].since, first,
        "the run started with the first failure"
    );
    assert_eq!(problems[1].error, "database or disk is full, again");
    health.succeeded(Part::Archive);
    assert_eq!(health.problems().len(), 1);
    health.succeeded(Part::Store);
    assert!(health.problems().is_empty());
}
