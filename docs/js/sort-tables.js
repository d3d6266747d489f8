// Click a heading of a table with class "sortable" to sort by that column (numeric where cells carry data-sort).
document.addEventListener("click", (event) => {
  const th = event.target.closest("table.sortable th");
  if (!th) return;
  const table = th.closest("table");
  const column = Array.from(th.parentNode.children).indexOf(th);
  const ascending = th.dataset.order !== "asc";
  th.parentNode.querySelectorAll("th").forEach((h) => delete h.dataset.order);
  th.dataset.order = ascending ? "asc" : "desc";
  const key = (row) => {
    const cell = row.children[column];
    const value = cell.dataset.sort;
    return value === undefined ? cell.textContent.trim() : parseFloat(value);
  };
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return ascending ? order : -order;
  });
  rows.forEach((row) => body.appendChild(row));
});
