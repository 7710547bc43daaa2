"""``python -m jaxopt_papers`` runs the tour (:func:`jaxopt_papers.tour.main`)."""

from jaxopt_papers.tour import main

if __name__ == "__main__":
    raise SystemExit(main())
