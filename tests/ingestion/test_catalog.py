from pathlib import Path

import pytest

from ingestion.catalog import CatalogError, read_catalog
from ingestion.documents import image_payload, product_text

HEADER = "product_id,title,category,color,year,description,image_files\n"


def _write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    (tmp_path / "products.csv").write_text(header + body, encoding="utf-8")
    return tmp_path


def test_good_rows_become_products(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        'p1,Navy Shirt,Apparel/Topwear/Shirts,Navy Blue,2012,,"a.jpg; b.jpg"\n'
        "p2,Apple,Grocery/Fruit/Apple,,,Crisp and red,c.jpg\n",
    )
    cat = read_catalog(root)
    assert cat.rejects == []
    p1, p2 = cat.products
    assert p1.image_files == ("a.jpg", "b.jpg")
    assert p1.attributes == {"color": "Navy Blue", "year": "2012"}
    assert p1.row == 2
    assert p2.description == "Crisp and red"
    assert cat.image_path("a.jpg") == root / "images" / "a.jpg"


def test_bad_rows_are_rejected_with_line_and_reason(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        "p1,Shirt,A/B,,,,a.jpg\n"
        ",No id,A/B,,,,b.jpg\n"
        "p1,Again,A/B,,,,c.jpg\n"
        "p3,,A/B,,,,d.jpg\n"
        "p4,No images,A/B,,,,\n",
    )
    cat = read_catalog(root)
    assert [p.product_id for p in cat.products] == ["p1"]
    reasons = {(r.source.rsplit(":", 1)[1], r.reason) for r in cat.rejects}
    assert reasons == {
        ("3", "missing product_id"),
        ("4", "duplicate product_id (first seen on line 2)"),
        ("5", "missing title"),
        ("6", "no image_files listed"),
    }
    assert all(r.source.startswith(str(root / "products.csv")) for r in cat.rejects)


def test_missing_file_or_columns_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"no products\.csv"):
        read_catalog(tmp_path)
    _write(tmp_path, "p1,x\n", header="product_id,name\n")
    with pytest.raises(CatalogError, match="missing column"):
        read_catalog(tmp_path)


def test_text_and_payload_carry_what_search_needs(tmp_path: Path) -> None:
    root = _write(tmp_path, "p1,Navy Shirt,Apparel/Topwear/Shirts,Navy Blue,2012,,a.jpg\n")
    product = read_catalog(root).products[0]
    assert product_text(product) == "Navy Shirt Apparel Topwear Shirts Navy Blue"
    payload = image_payload(product, "a.jpg", root / "images" / "a.jpg")
    assert payload["category"] == ["apparel", "apparel/topwear", "apparel/topwear/shirts"]
    assert payload["category_path"] == "Apparel/Topwear/Shirts"
    assert payload["year"] == 2012
    assert payload["product_id"] == "p1"
    assert payload["image_file"] == "a.jpg"


def test_a_csv_column_named_attributes_is_refused_up_front(tmp_path: Path) -> None:
    _write(tmp_path, "p1,t,a.jpg,red\n", header="product_id,title,image_files,attributes\n")
    with pytest.raises(CatalogError, match="attributes are reserved"):
        read_catalog(tmp_path)
